import DroverCore
import DroverPostgres
import Foundation

/// A throwaway database created on a server (the role needs CREATEDB), migrated, and dropped when
/// done. Tests use one each; `drover bench` runs in one so it never touches real sessions.
public struct ScratchDatabase: Sendable {
    public let name: String
    /// The server's URL with the scratch database as its path.
    public let conninfo: String
    let serverURL: String

    /// Creates `<prefix>_<random hex>` on the server at `serverURL` (a `postgresql://` URL).
    public static func create(on serverURL: String, prefix: String, migrations: [Migration]?) async throws -> ScratchDatabase {
        guard var components = URLComponents(string: serverURL), components.scheme?.hasPrefix("postgres") == true else {
            throw DroverError(.invalidArgument, "DATABASE_URL must be a postgresql:// URL to create a scratch database")
        }
        let name = prefix + "_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try await mappingErrors {
            let admin = try await PostgresConnection.connect(serverURL)
            defer { admin.close() }
            try await admin.execute(script: "CREATE DATABASE \(name)")
        }
        components.path = "/" + name
        let database = ScratchDatabase(name: name, conninfo: components.string!, serverURL: serverURL)
        if let migrations {
            let pool = ConnectionPool(conninfo: database.conninfo, maxConnections: 1)
            defer { pool.close() }
            try await Migrator(pool: pool).migrate(migrations)
        }
        return database
    }

    /// Drops the database, disconnecting whoever is still on it.
    public func drop() async throws {
        try await mappingErrors {
            let admin = try await PostgresConnection.connect(serverURL)
            defer { admin.close() }
            try await admin.execute(script: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        }
    }
}
