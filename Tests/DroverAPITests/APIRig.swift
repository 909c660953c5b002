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

    /// Runs a Python program of Tests/ with the venv's interpreter (scripts/deps.sh installs it);
    /// it must exit 0 and print "all checks passed".
    static func python(_ script: String, _ arguments: [String] = [], environment: [String: String]) async throws {
        let python = TestDatabase.packageRoot.appendingPathComponent(".drover/sdk/bin/python").path
        #expect(FileManager.default.isExecutableFile(atPath: python), "make test installs the venv (scripts/deps.sh)")
        let result = try await DroverProcess.run(
            program: python, [TestDatabase.packageRoot.appendingPathComponent(script).path] + arguments, environment: environment)
        #expect(result.status == 0 && result.stdout.contains("all checks passed"), "\(script) \(arguments):\n\(result.stdout)\n\(result.stderr)")
    }
}
