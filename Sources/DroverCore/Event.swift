import Foundation

/// One entry of a session's append-only log.
public struct Event: Sendable, Equatable {
    public var sessionID: SessionID
    /// Position in the session's log: 1, 2, 3 … with no gaps.
    public var seq: Int64
    /// Globally unique event id (a UUID).
    public var id: String
    public var type: EventType
    /// The payload as JSON object text, exactly as stored.
    public var payload: String
    public var createdAt: Date
    /// The lease epoch that wrote the event; `nil` for user-side events.
    public var leaseEpoch: Int64?

    /// The id the API shows (`sevt_` and the UUID's hex), which clients quote back
    /// (`custom_tool_use_id`, `tool_use_id` of a confirmation, `Last-Event-ID`).
    public var apiID: String { Self.apiID(uuid: id) }

    public static func apiID(uuid: String) -> String { "sevt_" + uuid.replacingOccurrences(of: "-", with: "").lowercased() }

    public init(
        sessionID: SessionID, seq: Int64, id: String, type: EventType, payload: String,
        createdAt: Date, leaseEpoch: Int64?
    ) {
        self.sessionID = sessionID
        self.seq = seq
        self.id = id
        self.type = type
        self.payload = payload
        self.createdAt = createdAt
        self.leaseEpoch = leaseEpoch
    }
}
