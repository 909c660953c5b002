import DroverCore
import DroverPostgres
import Foundation

/// One numbered SQL file from `migrations/`, e.g. `0002_session_api.sql`.
public struct Migration: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var sql: String

    /// Reads `NNNN_name.sql` files from `directory`, sorted by number. Numbers must be unique.
    public static func load(from directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        var migrations: [Migration] = []
        for file in files where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw DroverError(.migration, "\(file) is not named NNNN_name.sql")
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (a, b) in zip(migrations, migrations.dropFirst()) where a.version == b.version {
            throw DroverError(.migration, "two migrations are numbered \(a.version)")
        }
        return migrations
    }

    /// Finds `migrations/`: `$DROVER_MIGRATIONS_DIR`, else the working directory, else beside or
    /// above the executable (a build tree or an installed `share/drover/migrations`).
    public static func defaultDirectory() -> URL? {
        let fm = FileManager.default
        if let dir = ProcessInfo.processInfo.environment["DROVER_MIGRATIONS_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        var candidates = [URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent("migrations")]
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(dir.appendingPathComponent("migrations"))
            candidates.append(dir.appendingPathComponent("share/drover/migrations"))
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { fm.fileExists(atPath: $0.appendingPathComponent("0001_schema.sql").path) }
    }
}

/// Applies pending migrations in order, each in its own transaction, recorded in
/// `drover.schema_migrations`. A session-level advisory lock serialises concurrent runs, so two
/// `drover migrate` at once are safe and the second finds nothing to do.
public struct Migrator: Sendable {
    /// An arbitrary constant shared by every Drover migrator ("drover" in ASCII).
    static let advisoryLockKey: Int64 = 0x64_726F_7665_72

    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// Applies what is pending and returns the versions applied by this call.
    @discardableResult
    public func migrate(_ migrations: [Migration], progress: (Migration) -> Void = { _ in }) async throws -> [Int] {
        try await mappingErrors {
            try await pool.withConnection { conn in
                try await conn.query("SELECT pg_advisory_lock($1)", [Self.advisoryLockKey])
                do {
                    let applied = try await apply(migrations, on: conn, progress: progress)
                    try await conn.query("SELECT pg_advisory_unlock($1)", [Self.advisoryLockKey])
                    return applied
                } catch {
                    _ = try? await conn.query("SELECT pg_advisory_unlock($1)", [Self.advisoryLockKey])
                    throw error
                }
            }
        }
    }

    /// Versions already recorded as applied.
    public func appliedVersions() async throws -> [Int] {
        try await mappingErrors {
            let exists = try await pool.query("SELECT to_regclass('drover.schema_migrations') IS NOT NULL")
            guard try exists[0].decode(0, as: Bool.self) else { return [] }
            return try await pool.query("SELECT version FROM drover.schema_migrations ORDER BY version")
                .map { try $0.decode(0, as: Int.self) }
        }
    }

    private func apply(_ migrations: [Migration], on conn: PostgresConnection, progress: (Migration) -> Void) async throws -> [Int] {
        try await conn.execute(script: """
            CREATE SCHEMA IF NOT EXISTS drover;
            CREATE TABLE IF NOT EXISTS drover.schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """)
        let rows = try await conn.query("SELECT version, checksum FROM drover.schema_migrations")
        var recorded: [Int: String] = [:]
        for row in rows { recorded[try row.decode(0)] = try row.decode(1) }
        var applied: [Int] = []
        for migration in migrations {
            let checksum = Self.checksum(migration.sql)
            if let existing = recorded[migration.version] {
                guard existing == checksum else {
                    throw DroverError(.migration, "migration \(migration.version) changed after it was applied")
                }
                continue
            }
            progress(migration)
            try await conn.transaction { conn in
                try await conn.execute(script: migration.sql)
                try await conn.query(
                    "INSERT INTO drover.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    [migration.version, migration.name, checksum])
            }
            applied.append(migration.version)
        }
        return applied
    }

    /// FNV-1a over the file's bytes: enough to notice an edited migration, no crypto needed.
    static func checksum(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
