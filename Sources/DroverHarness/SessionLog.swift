import DroverCore

/// A session's log as a runner holds it: the events read so far, in seq order, each payload
/// parsed once. The runner extends it with only the events after `lastSeq`, so a long session
/// costs one read per step of what is new, not of everything.
public struct SessionLog: Sendable {
    public struct Entry: Sendable {
        public var event: Event
        public var json: JSONValue
        public var seq: Int64 { event.seq }
        public var type: EventType { event.type }
    }

    public private(set) var entries: [Entry] = []

    public init(events: [Event] = []) { append(events) }

    /// The highest seq held (0 for an empty log).
    public var lastSeq: Int64 { entries.last?.seq ?? 0 }

    /// Adds events read after `lastSeq`; anything already held is skipped.
    public mutating func append(_ events: [Event]) {
        for event in events where event.seq > lastSeq {
            entries.append(Entry(event: event, json: (try? JSONValue.parse(event.payload)) ?? [:]))
        }
    }

    /// The seq of the last event of `type`, or 0.
    public func lastSeq(of type: EventType) -> Int64 {
        entries.last { $0.type == type }?.seq ?? 0
    }
}
