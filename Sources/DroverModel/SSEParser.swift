import DroverCore

/// One server-sent event.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String
    public var data: String
    public init(event: String, data: String) {
        self.event = event
        self.data = data
    }
}

/// Parses a `text/event-stream` fed in arbitrary chunks: lines are buffered across chunks,
/// `data:` lines of one event are joined with newlines, a blank line dispatches the event,
/// comments (`:`) are skipped.
public struct SSEParser: Sendable {
    private var framer = LineFramer(maxLineLength: 16 << 20)
    private var event = ""
    private var data: [String] = []

    public init() {}

    public mutating func feed<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for frame in framer.feed(bytes) {
            guard case .line(let raw) = frame else { continue }
            let line = String(decoding: raw, as: UTF8.self)
            if line.isEmpty {
                if !data.isEmpty || !event.isEmpty {
                    events.append(ServerSentEvent(event: event.isEmpty ? "message" : event, data: data.joined(separator: "\n")))
                }
                event = ""
                data = []
                continue
            }
            if line.hasPrefix(":") { continue }
            let (field, value) = Self.split(line)
            switch field {
            case "event": event = value
            case "data": data.append(value)
            default: break
            }
        }
        return events
    }

    private static func split(_ line: String) -> (String, String) {
        guard let colon = line.firstIndex(of: ":") else { return (line, "") }
        var value = line[line.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        return (String(line[..<colon]), String(value))
    }
}
