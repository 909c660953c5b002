import DroverCore
import DroverIO
import Foundation

/// An MCP server from the `mcp` package on PyPI (Tests/mcp/mcp_server.py, run with the project's
/// venv) that demands a bearer token, with one tool, `add`.
public final class MCPTestServer: @unchecked Sendable {
    public let token: String
    public let url: String
    private let process: AnnouncingProcess

    public init(host: String = "127.0.0.2") throws {
        token = "mcp-" + (0..<3).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
        // A free port: bound, read, released (the server binds it again at once).
        let probe = try Listener(host: host, port: 0)
        let port = probe.port
        probe.close()
        process = try AnnouncingProcess(
            TestDatabase.packageRoot.appendingPathComponent(".drover/sdk/bin/python").path,
            [TestDatabase.packageRoot.appendingPathComponent("Tests/mcp/mcp_server.py").path, token, host, String(port)])
        guard process.firstLine == "ready" else {
            process.stop()
            throw DroverError(.invalidArgument, "the MCP server did not start (make test installs mcp into .drover/sdk)")
        }
        url = "http://\(host):\(port)/mcp"
    }

    public func stop() {
        process.stop()
    }
}
