import DroverCore
import DroverIO
import Foundation

/// An MCP server from the `mcp` package on PyPI (Tests/mcp/mcp_server.py, run with the project's
/// venv) that demands a bearer token, with one tool, `add`.
public final class MCPTestServer: @unchecked Sendable {
    public let token: String
    public let url: String
    private let process: Process

    public init(host: String = "127.0.0.2") throws {
        token = "mcp-" + (0..<3).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
        // A free port: bound, read, released (the server binds it again at once).
        let probe = try Listener(host: host, port: 0)
        let port = probe.port
        probe.shutdown()
        process = Process()
        process.executableURL = TestDatabase.packageRoot.appendingPathComponent(".drover/sdk/bin/python")
        process.arguments = [TestDatabase.packageRoot.appendingPathComponent("Tests/mcp/mcp_server.py").path, token, host, String(port)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let fd = output.fileHandleForReading.fileDescriptor
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 10 { line.append(byte) }
        guard String(decoding: line, as: UTF8.self) == "ready" else {
            kill(process.processIdentifier, SIGKILL)
            throw DroverError(.invalidArgument, "the MCP server did not start (make test installs mcp into .drover/sdk)")
        }
        url = "http://\(host):\(port)/mcp"
    }

    public func stop() {
        // SIGKILL: a child of the test runner may inherit a mask that blocks SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
