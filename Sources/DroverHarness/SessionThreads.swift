import DroverCore
import DroverModel
import DroverStore

/// A coordinator's session threads, as its harness offers and starts them: the `create_thread`
/// tool over the agent's roster, a thread's id (derived from the call that asked, so that a
/// resumed call starts nothing twice), the call's result, and how a thread's reply reads to the
/// coordinator. Pure; `SessionRunner` starts the thread (`drover.spawn_thread`) and writes.
enum SessionThreads {
    static let toolName = "create_thread"
    static let messageToolName = "message_thread"

    /// The tool, naming the roster's agents and, where inline agents are enabled, taking one
    /// defined on the spot; nil when neither, and in a thread itself (one level only).
    static func tool(roster: [(name: String, id: String, version: Int)], inline: Bool, session: SessionID) -> ToolDefinition? {
        guard !roster.isEmpty || inline, !session.rawValue.hasPrefix(SessionStore.threadPrefix) else { return nil }
        let properties = agentChoice(roster: roster, inline: inline).merging(["message": ["type": "string", "description": "The thread's task."]]) { $1 }
        return ToolDefinition(
            name: toolName,
            description: "Start a session thread: another agent works on `message` in its own context, sharing this session's environment. "
                + "It runs on its own; its reply arrives as a message from the thread when it finishes.",
            inputSchema: ["type": "object", "properties": .object(properties), "required": ["message"]])
    }

    /// The schema's properties that name a thread's agent: `agent`, one of the roster's, and
    /// where inline agents are enabled `inline`, one defined on the spot.
    static func agentChoice(roster: [(name: String, id: String, version: Int)], inline: Bool) -> [String: JSONValue] {
        var properties: [String: JSONValue] = [:]
        if !roster.isEmpty {
            properties["agent"] = ["type": "string", "enum": .array(roster.map { .string($0.name) }), "description": "Which agent runs the thread."]
        }
        if inline {
            properties["inline"] = [
                "type": "object", "description": "Or: an agent defined here (not saved), with your model and the built-in tools.",
                "properties": ["name": ["type": "string"], "system": ["type": "string", "description": "Its system prompt."]],
                "required": ["name", "system"],
            ]
        }
        return properties
    }

    /// The tool that sends a thread of this session another message (offered with `tool`).
    static func messageTool(roster: [(name: String, id: String, version: Int)]) -> ToolDefinition {
        ToolDefinition(
            name: messageToolName,
            description: "Send a session thread another message (it works on it; its reply arrives as a message from the thread). "
                + "Name the thread by thread_id, or by agent for that agent's latest thread.",
            inputSchema: [
                "type": "object",
                "properties": [
                    "thread_id": ["type": "string", "description": "The thread (sthr_…)."],
                    "agent": ["type": "string", "enum": .array(roster.map { .string($0.name) }), "description": "Or: that agent's latest thread."],
                    "message": ["type": "string"],
                ],
                "required": ["message"],
            ])
    }

    /// The thread a `message_thread` call names: its `thread_id`, else its agent's latest thread.
    static func addressee(_ input: JSONValue, threads: [(id: String, agent: String)]) -> String? {
        if let id = input["thread_id"]?.stringValue, !id.isEmpty { return id }
        guard let agent = input["agent"]?.stringValue else { return nil }
        return threads.last { $0.agent == agent }?.id
    }

    /// The thread's id: the session's and the call's, hashed (`sthr_` and 32 hex digits).
    static func threadID(session: SessionID, callID: String) -> String {
        SessionStore.threadPrefix + String(SHA256.hex(Array("\(session.rawValue)/\(callID)".utf8)).prefix(32))
    }

    /// The call's result (the thread's start is logged by `drover.spawn_thread` itself).
    static func started(thread: String, agent: String, callID: String) -> HarnessEvent {
        .toolResult(callID: callID, content: "Started thread \(thread), running \(agent). Its reply arrives as a message from the thread when it finishes.",
                    isError: false)
    }

    /// What the coordinator reads of a thread's reply (`agent.thread_message_received`).
    static func reply(_ payload: JSONValue) -> String {
        let thread = payload["from_session_thread_id"]?.stringValue ?? "?"
        let agent = payload["from_agent_name"]?.stringValue.map { " (\($0))" } ?? ""
        let text = ContextView.Builder.text(payload["content"])
        return "Reply from thread \(thread)\(agent):\n\(text.isEmpty ? "(no message)" : text)"
    }
}
