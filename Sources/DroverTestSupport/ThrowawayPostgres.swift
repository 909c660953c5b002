import DroverCore
import DroverIO
import Foundation

/// A PostgreSQL server of a test's own, started by `scripts/pg.sh` with stock settings
/// (`max_connections = 100`), for tests that read the server's log or count its backends
/// without other tests' connections in the way. Deleted by `stop`.
public struct ThrowawayPostgres: Sendable {
    public let home: String
    public let url: String

    /// The server's log (connection refusals appear here).
    public var serverLog: String { (try? String(contentsOfFile: realHome + "/data/server.log", encoding: .utf8)) ?? "" }

    private var realHome: String { (try? FileManager.default.destinationOfSymbolicLink(atPath: home)) ?? home }

    public static func start() async throws -> ThrowawayPostgres {
        let home = TestDatabase.packageRoot.appendingPathComponent(".drover/pg-test-\(UInt32.random(in: 0...UInt32.max))").path
        let status = try await Shell.run("DROVER_PG_HOME='\(home)' '\(TestDatabase.packageRoot.path)/scripts/pg.sh' start 2>/dev/null")
        guard status == 0, let port = try? String(contentsOfFile: home + "/port", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else {
            throw DroverError(.invalidArgument, "scripts/pg.sh could not start a server in \(home) (status \(status))")
        }
        return ThrowawayPostgres(home: home, url: "postgresql://drover@127.0.0.1:\(port)/drover")
    }

    public func stop() async {
        _ = try? await Shell.run("DROVER_PG_HOME='\(home)' '\(TestDatabase.packageRoot.path)/scripts/pg.sh' stop >/dev/null 2>&1")
    }
}
