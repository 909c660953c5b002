import DroverCore
import DroverModel
import DroverStore

/// `multiagent`'s advisor: a model the session's primary thread may consult mid-turn, through the
/// `consult_advisor` tool. The harness asks it (a model request of its own) and the answer is the
/// call's result, which logs the advisor's model and usage (`drover_advisor`, counted against the
/// session's budgets). Pure; `SessionRunner` makes the call.
enum Advisor {
    static let toolName = "consult_advisor"

    /// The advisor's model: `multiagent_20261001`'s enabled `advisor`, or a coordinator roster's
    /// `{type: advisor}` entry.
    static func model(_ multiagent: JSONValue) -> String? {
        if multiagent["advisor"]?["type"]?.stringValue == "enabled" { return multiagent["advisor"]?["model"]?.stringValue }
        if case .array(let roster)? = multiagent["agents"] {
            return roster.first { $0["type"]?.stringValue == "advisor" }?["model"]?.stringValue
        }
        return nil
    }

    static func tool(model: String?, session: SessionID) -> ToolDefinition? {
        guard let model, !session.rawValue.hasPrefix(SessionStore.threadPrefix) else { return nil }
        return ToolDefinition(
            name: toolName,
            description: "Ask the advisor (\(model)) a question mid-task: a second opinion on a plan, a decision or a hard step. "
                + "It sees only your question, so include what it needs.",
            inputSchema: ["type": "object", "properties": ["question": ["type": "string"]], "required": ["question"]])
    }

    static let system = "You advise an AI agent that is in the middle of a task. Answer its question directly and briefly."

    static func request(question: String, model: String, maxTokens: Int, session: String) -> ModelRequest {
        ModelRequest(model: model, system: system, messages: [Message(role: .user, content: [.text(question)])], tools: [],
                     maxTokens: maxTokens, userID: session)
    }

    /// The advisor's answer as text (its text blocks).
    static func answer(_ response: ModelResponse) -> String {
        response.content.compactMap { if case .text(let text) = $0 { text } else { nil } }.joined(separator: "\n")
    }
}
