import DroverCore
import DroverIO
import DroverSandbox
import Foundation

/// A `drover sandbox-pool` daemon started for a test, with its own token and workspace root.
public struct RunningPool: Sendable {
    public let daemon: ChildDaemon
    public let address: String
    public let token: String
    public let workspaceRoot: String
    public let tokenFile: String

    /// What every sandboxed call's command line and every workspace mount of this pool names, and
    /// the daemon's own command line does not: a path under the root starting with `w` (a
    /// workspace `ws_…`, or the `workspaces` mount they sit under with quotas).
    public var workspacePrefix: String { workspaceRoot + "/w" }

    /// Starts a pool on a free loopback port. `environment` is added to the daemon's environment
    /// (tests plant secrets there to prove sandboxes cannot see them).
    /// `token`: another pool's, for a second pool the same harnesses use.
    public static func start(_ extra: [String] = [], environment: [String: String] = [:], token shared: String? = nil) async throws -> RunningPool {
        let unique = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let token = shared ?? "token-" + unique
        // The file's name must not contain the token: error messages that echo the path would
        // look like leaks.
        let tokenFile = NSTemporaryDirectory() + "drover-token-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let root = NSTemporaryDirectory() + "drover-test-pool-" + unique
        let daemon = try ChildDaemon(
            binary: TestDatabase.droverBinary.path, ["sandbox-pool", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--workspace-root", root] + extra,
            environment: environment)
        let listening = try await daemon.waitForLog("listening")
        guard let address = listening["address"]?.stringValue else {
            throw DroverError(.invalidArgument, "no address in \(listening.text)")
        }
        return RunningPool(daemon: daemon, address: address, token: token, workspaceRoot: root, tokenFile: tokenFile)
    }

    /// Starts a pool, connects, provisions a sandbox, runs `body`, and stops the pool whether
    /// `body` threw or not; returns the pool's exit status.
    @discardableResult
    public static func withSandbox(
        _ extra: [String] = [], environment: [String: String] = [:], _ body: (RunningPool, PoolClient, String) async throws -> Void
    ) async throws -> Int32? {
        let pool = try await start(extra, environment: environment)
        let client = try await pool.client()
        do {
            try await body(pool, client, try await client.provision())
        } catch {
            client.close()
            await pool.stop()
            throw error
        }
        client.close()
        return await pool.stop()
    }

    /// A connection that has said hello.
    public func client() async throws -> PoolClient {
        try await PoolClient.connect(address, token: token)
    }

    /// SIGTERM, then the exit status (nil if it did not exit within `timeout`).
    @discardableResult
    public func stop(timeout: Double = 15) async -> Int32? {
        daemon.signal(SIGTERM)
        let status = await daemon.wait(timeout: timeout)
        try? FileManager.default.removeItem(atPath: tokenFile)
        return status
    }
}

/// Shortcuts for reading tool results in tests.
extension JSONValue {
    public var output: String { self["output"]?.stringValue ?? "" }
    public var isError: Bool { self["is_error"]?.boolValue ?? false }
    public var exitCode: Int? { self["exit_code"]?.intValue }
}
