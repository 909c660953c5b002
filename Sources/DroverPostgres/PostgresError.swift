/// A failure reported by libpq or by the server.
///
/// `code` is stable; `sqlState` is the server's SQLSTATE when it sent one. `description` names only
/// the code and SQLSTATE so that logs never carry query data; `String(reflecting:)` has the message.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A connection could not be opened.
        public static let connectionFailed = Code(rawValue: "connection_failed")
        /// The connection broke before or during the request; its outcome is unknown.
        public static let connectionLost = Code(rawValue: "connection_lost")
        /// The server rejected the request; see `sqlState`.
        public static let server = Code(rawValue: "server_error")
        /// A value could not be decoded into the requested Swift type.
        public static let decoding = Code(rawValue: "decoding_error")
        /// The pool was closed or timed out waiting for a connection.
        public static let poolUnavailable = Code(rawValue: "pool_unavailable")
    }

    /// Whether the failure is the connection's (its outcome unknown), not the statement's.
    public var isConnectionFailure: Bool { code == .connectionLost || code == .connectionFailed || code == .poolUnavailable }

    /// SQLSTATE values the code base reacts to.
    public enum SQLState {
        public static let uniqueViolation = "23505"
        public static let invalidTextRepresentation = "22P02"
        /// `jsonb` cannot hold `\u0000`.
        public static let untranslatableCharacter = "22P05"
        public static let serializationFailure = "40001"
        public static let lockNotAvailable = "55P03"
        public static let adminShutdown = "57P01"
        public static let cannotConnectNow = "57P03"
    }

    public var code: Code
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?

    public init(_ code: Code, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    public var description: String {
        sqlState.map { "PostgresError(\(code), sqlState: \($0))" } ?? "PostgresError(\(code))"
    }

    public var debugDescription: String {
        var text = "\(code)"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let detail { text += " (\(detail))" }
        return text
    }
}
