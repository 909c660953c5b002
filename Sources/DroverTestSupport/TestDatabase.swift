import DroverCore
import DroverPostgres
import DroverStore
import Foundation

/// A database of its own for one test, created on the server named by `DATABASE_URL` (which
/// `make test` points at a throwaway cluster) and dropped afterwards. Tests never share state.
public struct TestDatabase: Sendable {
    let scratch: ScratchDatabase
    public var name: String { scratch.name }
    public var conninfo: String { scratch.conninfo }

    /// The package's root folder, found from this file's path.
    /// The vault key every test harness and API gets (DROVER_VAULT_KEY): secrets are sealed with it.
    public static let vaultKey = "drover-test-vault-key-0123456789abcdef"

    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var migrationsDirectory: URL { packageRoot.appendingPathComponent("migrations") }

    /// The `drover` executable built next to the tests (`$DROVER_BIN` overrides).
    public static var droverBinary: URL {
        if let path = ProcessInfo.processInfo.environment["DROVER_BIN"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return packageRoot.appendingPathComponent(".build/debug/drover")
    }

    public static func serverURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw DroverError(.invalidArgument, "tests need DATABASE_URL; run them with `make test`")
        }
        return url
    }

    /// Creates an empty database (on `server`, else the one in `DATABASE_URL`), migrated unless
    /// `migrated` is false.
    public static func create(migrated: Bool = true, on server: String? = nil) async throws -> TestDatabase {
        let scratch = try await ScratchDatabase.create(
            on: try server ?? serverURL(), prefix: "drover_test", migrations: migrated ? try Migration.load(from: migrationsDirectory) : nil)
        return TestDatabase(scratch: scratch)
    }

    /// Runs `body` with a fresh database and drops it afterwards, whether `body` threw or not.
    public static func with<T>(migrated: Bool = true, _ body: (TestDatabase) async throws -> T) async throws -> T {
        let database = try await create(migrated: migrated)
        do {
            let value = try await body(database)
            try await database.drop()
            return value
        } catch {
            try? await database.drop()
            throw error
        }
    }

    public func pool(maxConnections: Int = 4) -> ConnectionPool {
        ConnectionPool(conninfo: conninfo, maxConnections: maxConnections, connectTimeout: 30)
    }

    public func drop() async throws { try await scratch.drop() }
}
