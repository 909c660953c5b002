/// An error that crosses a boundary (SQL function, CLI exit, protocol reply) with a stable code.
///
/// `description` names only the code so that logs never leak payloads; the message is for people
/// and is shown by `String(reflecting:)` and by the CLI.
public struct DroverError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// A stable, documented error code. New codes may be added; existing ones never change meaning.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The caller's lease is stale, expired or taken over; nothing was written.
        public static let leaseLost = Code(rawValue: "lease_lost")
        /// The session (or agent, environment) does not exist.
        public static let notFound = Code(rawValue: "not_found")
        /// The payload is not a JSON object.
        public static let invalidPayload = Code(rawValue: "invalid_payload")
        /// The payload is larger than `drover.max_payload_bytes` (default 1 MiB).
        public static let payloadTooLarge = Code(rawValue: "payload_too_large")
        /// The event type is not one this side may write.
        public static let unknownEventType = Code(rawValue: "unknown_event_type")
        /// The session is terminated and accepts no more events.
        public static let sessionTerminated = Code(rawValue: "session_terminated")
        /// An argument is out of range or malformed.
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// The database could not be reached or the connection broke mid-request.
        public static let connectionLost = Code(rawValue: "connection_lost")
        /// Any other database failure; the SQLSTATE is in the message.
        public static let database = Code(rawValue: "database_error")
        /// Events are append-only; an UPDATE, DELETE or TRUNCATE on them was refused.
        public static let appendOnly = Code(rawValue: "append_only")
        /// A precondition failed: an update named a version that is no longer current.
        public static let conflict = Code(rawValue: "conflict")
        /// A secret was sealed under another vault key than the one this process has (DR020).
        public static let vaultKeyMismatch = Code(rawValue: "vault_key_mismatch")
        /// A secret was to be stored or read, but this process was started without a vault key
        /// (`DROVER_VAULT_KEY` / `DROVER_VAULT_KEY_FILE`).
        public static let vaultKeyMissing = Code(rawValue: "vault_key_missing")
        /// A migration file or the migrations table is inconsistent.
        public static let migration = Code(rawValue: "migration_failed")
        /// A resource's SQL render does not fit its Swift type (`DroverResources`): a server bug,
        /// answered 500 rather than sent in a shape the SDK's models would refuse.
        public static let renderMismatch = Code(rawValue: "render_mismatch")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "DroverError(\(code))" }
    public var debugDescription: String { "\(code): \(message)" }
}
