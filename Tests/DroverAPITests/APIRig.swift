import DroverCore
import DroverTestSupport
import Foundation
import Testing

/// What the API's end-to-end tests share: a cluster with `drover api` on its database, stopped
/// whether the body threw or not, and third-party clients run from the project's venv.
enum APIRig {
    static func withClusterAndAPI(
        script: JSONValue, harnesses: Int = 1, apiArgs: [String] = [], harnessArgs: [String] = [], poolArgs: [String] = [],
        _ body: (HarnessCluster, RunningAPI) async throws -> Void
    ) async throws {
        let cluster = try await HarnessCluster.start(script: script, harnesses: harnesses, harnessArgs: harnessArgs, poolArgs: poolArgs)
        let api = try await RunningAPI.start(database: cluster.database.conninfo, apiArgs)
        do {
            try await body(cluster, api)
        } catch {
            await api.stop()
            await cluster.stop()
            throw error
        }
        #expect(await api.stop() == 0)
        await cluster.stop()
    }

    /// The venv's interpreter (scripts/deps.sh installs it).
    static let pythonPath = TestDatabase.packageRoot.appendingPathComponent(".drover/sdk/bin/python").path

    /// Runs a Python program of Tests/ with the venv's interpreter; it must exit 0 and, unless
    /// `checks` is false (a step that only makes or prints something), print "all checks passed".
    /// Returns its standard output.
    @discardableResult
    static func python(_ script: String, _ arguments: [String] = [], environment: [String: String], checks: Bool = true) async throws -> String {
        #expect(FileManager.default.isExecutableFile(atPath: pythonPath), "make test installs the venv (scripts/deps.sh)")
        let result = try await DroverProcess.run(
            program: pythonPath, [TestDatabase.packageRoot.appendingPathComponent(script).path] + arguments, environment: environment)
        let passed = result.status == 0 && (!checks || result.stdout.contains("all checks passed"))
        #expect(passed, "\(script) \(arguments):\n\(result.stdout)\n\(result.stderr)")
        guard passed else { throw DroverError(.invalidArgument, "\(script) \(arguments.first ?? "") failed") }
        return result.stdout
    }
}
