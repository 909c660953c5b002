import Foundation
import Synchronization

/// Structured logging: one JSON object per line on standard error, with a timestamp, level,
/// component and whatever fields the caller adds (session id, lease epoch, harness id, sandbox …);
/// or, with `--log-format text`, the same as readable text.
public struct Log: Sendable {
    public enum Level: String, Sendable, Comparable {
        case debug, info, warning, error

        var rank: Int {
            switch self {
            case .debug: 0
            case .info: 1
            case .warning: 2
            case .error: 3
            }
        }

        public static func < (a: Level, b: Level) -> Bool { a.rank < b.rank }
    }

    /// How lines are written: JSON objects (the default, for machines) or text (for people).
    public enum Format: String, Sendable { case json, text }

    private static let format = Mutex(Format.json)

    /// Sets the format for the whole process (daemons do it once, from `--log-format`).
    public static func setFormat(_ format: Format) { self.format.withLock { $0 = format } }

    public let component: String
    public let minimum: Level
    /// Fields added to every line (e.g. the daemon's id).
    public let context: [(String, JSONValue)]
    private static let writeLock = Mutex(())

    public init(component: String, minimum: Level = .info, context: [(String, JSONValue)] = []) {
        self.component = component
        self.minimum = minimum
        self.context = context
    }

    /// A logger with more fields on every line.
    public func with(_ fields: (String, JSONValue)...) -> Log {
        Log(component: component, minimum: minimum, context: context + fields)
    }

    public func debug(_ message: String, _ fields: (String, JSONValue)...) { write(.debug, message, fields) }
    public func info(_ message: String, _ fields: (String, JSONValue)...) { write(.info, message, fields) }
    public func warning(_ message: String, _ fields: (String, JSONValue)...) { write(.warning, message, fields) }
    public func error(_ message: String, _ fields: (String, JSONValue)...) { write(.error, message, fields) }

    private func write(_ level: Level, _ message: String, _ fields: [(String, JSONValue)]) {
        guard level >= minimum else { return }
        let timestamp = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        if Self.format.withLock({ $0 }) == .text {
            let fields = (context + fields).map { key, value in "\(key)=\(value.stringValue ?? value.text)" }.joined(separator: " ")
            let line = "\(timestamp) \(level.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(component): \(message)\(fields.isEmpty ? "" : "  " + fields)\n"
            Self.writeLock.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) }
            return
        }
        var members: [(String, String)] = [
            ("ts", JSONText.quote(timestamp)), ("level", JSONText.quote(level.rawValue)),
            ("component", JSONText.quote(component)), ("msg", JSONText.quote(message)),
        ]
        members += (context + fields).map { ($0.0, $0.1.text) }
        let line = Data((JSONText.object(members) + "\n").utf8)
        Self.writeLock.withLock { _ in FileHandle.standardError.write(line) }
    }
}
