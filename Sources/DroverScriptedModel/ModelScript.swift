import DroverCore
import Foundation

/// What `drover scripted-model` replays: scripted assistant turns, not a model.
///
/// ```json
/// {"turns": [
///    {"content": [{"type": "text", "text": "Writing it."},
///                 {"type": "tool_use", "name": "write", "input": {"path": "a.py", "content": "print(1)"}}],
///     "stop_reason": "tool_use", "latency_ms": 20},
///    {"failures": [{"status": 429, "retry_after": 0}, {"status": 529}, {"stream_error": "overloaded_error"}],
///     "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"},
///    {"malformed": true}],
///  "after": {"content": [{"type": "text", "text": "Nothing more is scripted."}], "stop_reason": "end_turn"}}
/// ```
///
/// A request gets the turn whose index is the number of assistant messages it carries, so a
/// retried or resumed conversation gets the same turn again. `failures` are answered, in order,
/// to the first attempts at that turn in each conversation (`metadata.user_id`).
///
/// A failure with `stream_error` answers 200, starts the stream, then sends an `error` event.
/// `"omit_ids": true` sends the turn's OpenAI tool calls without ids.
///
/// `{{tool_use_id}}` in a tool input's strings is replaced by the call's id.
/// `"variants": [{"match": "TEXT", "turns": [...]}]` gives conversations whose first user message
/// contains TEXT their own turns (so one server can play several scripts at once).
public struct ModelScript: Sendable {
    public struct Failure: Sendable {
        public var status: Int
        public var retryAfter: Double?
        /// Answer 200 and then an `error` event of this type mid-stream (e.g. `overloaded_error`).
        public var streamError: String?
    }

    public struct Turn: Sendable {
        public var content: [JSONValue]
        public var stopReason: String
        public var latencyMs: Int
        public var failures: [Failure]
        public var malformed: Bool
        public var thinking: String?
        /// OpenAI format only: send tool calls without an id, as some compatible servers do.
        public var omitIDs: Bool
        /// A pause between a text block's fragments (`chunk_delay_ms`), as a model writing slowly.
        public var chunkDelayMs = 0
    }

    public var turns: [Turn]
    public var after: Turn
    /// Alternative turn lists, chosen by text in the first user message.
    public var variants: [(match: String, turns: [Turn])] = []

    public static func load(_ json: JSONValue) throws -> ModelScript {
        guard case .array(let turns)? = json["turns"] else {
            throw DroverError(.invalidArgument, "a script needs \"turns\": [...]")
        }
        let fallback = json["after"].map(turn) ?? Turn(
            content: [["type": "text", "text": "(the script has no more turns)"]], stopReason: "end_turn", latencyMs: 0,
            failures: [], malformed: false, thinking: nil, omitIDs: false)
        var script = ModelScript(turns: turns.map(turn), after: fallback)
        if case .array(let variants)? = json["variants"] {
            script.variants = variants.compactMap { variant in
                guard let match = variant["match"]?.stringValue, case .array(let turns)? = variant["turns"] else { return nil }
                return (match, turns.map(turn))
            }
        }
        return script
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
            failures = list.map {
                Failure(status: $0["status"]?.intValue ?? 529, retryAfter: $0["retry_after"]?.doubleValue, streamError: $0["stream_error"]?.stringValue)
            }
        }
        let stop = json["stop_reason"]?.stringValue
            ?? (content.contains { $0["type"]?.stringValue == "tool_use" } ? "tool_use" : "end_turn")
        var turn = Turn(
            content: content, stopReason: stop, latencyMs: json["latency_ms"]?.intValue ?? 0, failures: failures,
            malformed: json["malformed"]?.boolValue ?? false, thinking: json["thinking"]?.stringValue,
            omitIDs: json["omit_ids"]?.boolValue ?? false)
        turn.chunkDelayMs = min(max(json["chunk_delay_ms"]?.intValue ?? 0, 0), 10_000)
        return turn
    }

    /// The turn at `index` for a conversation that opened with `firstMessage`.
    public func turn(at index: Int, firstMessage: String = "") -> Turn {
        let list = variants.first { firstMessage.contains($0.match) }?.turns ?? turns
        return index < list.count ? list[index] : after
    }
}
