import DroverCore
import Foundation

/// What `drover scripted-model` replays: scripted assistant turns, not a model.
///
/// ```json
/// {"turns": [
///    {"content": [{"type": "text", "text": "Writing it."},
///                 {"type": "tool_use", "name": "write", "input": {"path": "a.py", "content": "print(1)"}}],
///     "stop_reason": "tool_use", "latency_ms": 20},
///    {"failures": [{"status": 429, "retry_after": 0}, {"status": 529}],
///     "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"},
///    {"malformed": true}],
///  "after": {"content": [{"type": "text", "text": "Nothing more is scripted."}], "stop_reason": "end_turn"}}
/// ```
///
/// A request gets the turn whose index is the number of assistant messages it carries, so a
/// retried or resumed conversation gets the same turn again. `failures` are answered, in order,
/// to the first attempts at that turn in each conversation (`metadata.user_id`).
public struct ModelScript: Sendable {
    public struct Failure: Sendable {
        public var status: Int
        public var retryAfter: Double?
    }

    public struct Turn: Sendable {
        public var content: [JSONValue]
        public var stopReason: String
        public var latencyMs: Int
        public var failures: [Failure]
        public var malformed: Bool
        public var thinking: String?
    }

    public var turns: [Turn]
    public var after: Turn

    public static func load(_ json: JSONValue) throws -> ModelScript {
        guard case .array(let turns)? = json["turns"] else {
            throw DroverError(.invalidArgument, "a script needs \"turns\": [...]")
        }
        let fallback = json["after"].map(turn) ?? Turn(
            content: [["type": "text", "text": "(the script has no more turns)"]], stopReason: "end_turn", latencyMs: 0,
            failures: [], malformed: false, thinking: nil)
        return ModelScript(turns: turns.map(turn), after: fallback)
    }

    public static func load(file: String) throws -> ModelScript {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DroverError(.invalidArgument, "cannot read the script \(file)")
        }
        return try load(try JSONValue.parse(Array(data)))
    }

    private static func turn(_ json: JSONValue) -> Turn {
        let content: [JSONValue]
        if case .array(let blocks)? = json["content"] { content = blocks } else { content = [] }
        var failures: [Failure] = []
        if case .array(let list)? = json["failures"] {
            failures = list.map { Failure(status: $0["status"]?.intValue ?? 529, retryAfter: $0["retry_after"]?.doubleValue) }
        }
        let stop = json["stop_reason"]?.stringValue
            ?? (content.contains { $0["type"]?.stringValue == "tool_use" } ? "tool_use" : "end_turn")
        return Turn(
            content: content, stopReason: stop, latencyMs: json["latency_ms"]?.intValue ?? 0, failures: failures,
            malformed: json["malformed"]?.boolValue ?? false, thinking: json["thinking"]?.stringValue)
    }

    public func turn(at index: Int) -> Turn { index < turns.count ? turns[index] : after }
}
