import DroverCore
import DroverIO
import Foundation

/// A `drover api` process started for a test on a free loopback port.
public struct RunningAPI: Sendable {
    public let daemon: ChildDaemon
    public let address: String
    public let database: String

    public static func start(database: String, _ extra: [String] = [], environment: [String: String] = [:]) async throws -> RunningAPI {
        let daemon = try ChildDaemon(
            // Few connections: tests run side by side against one stock server (max_connections 100).
            binary: TestDatabase.droverBinary.path, ["api", "--listen", "127.0.0.1:0", "--grace", "2", "--db-connections", "3"] + extra,
            environment: ["DATABASE_URL": database, "DROVER_VAULT_KEY": TestDatabase.vaultKey].merging(environment) { $1 })
        let listening = try await daemon.waitForLog("listening")
        guard let address = listening["address"]?.stringValue else { throw DroverError(.invalidArgument, "no address in \(listening.text)") }
        return RunningAPI(daemon: daemon, address: address, database: database)
    }

    /// A new key of the organisation (made with `drover api-key create`).
    public func key(org: String, operator_: Bool = false) async throws -> String {
        let result = try await DroverProcess.run(["api-key", "create", "--org", org, "--json"] + (operator_ ? ["--operator"] : []), database: database)
        guard result.status == 0, let key = (try? JSONValue.parse(result.stdout))?["key"]?.stringValue else {
            throw DroverError(.invalidArgument, "api-key create failed: \(result.stderr)")
        }
        return key
    }

    @discardableResult
    public func stop(timeout: Double = 15) async -> Int32? {
        daemon.signal(SIGTERM)
        return await daemon.wait(timeout: timeout)
    }
}
