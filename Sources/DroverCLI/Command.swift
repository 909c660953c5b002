import DroverCore
import DroverIO
import DroverPostgres
import DroverStore
import Foundation

/// One `drover` subcommand.
public protocol Command {
    static var name: String { get }
    static var summary: String { get }
    /// The full `--help` text.
    static var help: String { get }
    static var options: Set<String> { get }
    static var flags: Set<String> { get }
    static func run(_ arguments: Arguments) async throws
}

extension Command {
    public static var options: Set<String> { [] }
    public static var flags: Set<String> { [] }
}

/// Shared set-up for commands that talk to the database.
public enum Environment {
    public static func databaseURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw UsageError("DATABASE_URL is not set (e.g. postgresql://user@127.0.0.1:5432/drover)")
        }
        return url
    }

    public static func pool(maxConnections: Int = 4) throws -> ConnectionPool {
        ConnectionPool(conninfo: try databaseURL(), maxConnections: maxConnections, connectTimeout: 10)
    }
}

/// Options every daemon takes.
public enum DaemonOptions {
    public static let names: Set<String> = ["log-format", "metrics-listen"]

    /// Applies `--log-format`; returns `--metrics-listen` when given.
    public static func apply(_ arguments: Arguments) throws -> (host: String, port: UInt16)? {
        if let format = arguments.value("log-format") {
            guard let parsed = Log.Format(rawValue: format) else { throw UsageError("--log-format is json or text") }
            Log.setFormat(parsed)
        }
        guard let listen = arguments.value("metrics-listen") else { return nil }
        guard let (host, port) = parseHostPort(listen) else { throw UsageError("--metrics-listen takes HOST:PORT") }
        return (host, port)
    }

    public static let help = """
          --log-format F         json (default: one object per line) or text
          --metrics-listen H:P   serve /metrics (Prometheus), /healthz and /readyz there
        """
}

/// Colour, only for a terminal (and never with NO_COLOR set).
public enum Terminal {
    public static var isColour: Bool {
        isatty(1) != 0 && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
    }

    public static func red(_ text: String, _ colour: Bool) -> String { colour ? "\u{1B}[31;1m\(text)\u{1B}[0m" : text }
    public static func dim(_ text: String, _ colour: Bool) -> String { colour ? "\u{1B}[2m\(text)\u{1B}[0m" : text }
    public static let clear = "\u{1B}[H\u{1B}[2J"
}

/// Writes to standard output without buffering surprises between lines.
public enum Output {
    public static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    public static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// A fixed-width table with a header row.
    public static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func render(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([render(header)] + rows.map(render)).joined(separator: "\n")
    }

    /// ISO-8601 with milliseconds, UTC.
    public static func timestamp(_ date: Date?) -> String {
        guard let date else { return "-" }
        return date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    public static func seconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        return String(format: "%.1fs", value)
    }
}
