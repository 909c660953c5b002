import Foundation

/// A helper program a test runs (the git server, the MCP server, a socket holder): started with its standard output
/// piped, it says on its first line that it is ready (or where it listens).
public final class AnnouncingProcess: @unchecked Sendable {
    private let process = Process()
    /// What it printed first (empty when it ended without a line).
    public let firstLine: String

    public init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let fd = output.fileHandleForReading.fileDescriptor
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 10 { line.append(byte) }
        firstLine = String(decoding: line, as: UTF8.self)
    }

    /// SIGKILL (a child of the test runner may inherit a mask that blocks SIGTERM), then waits.
    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
