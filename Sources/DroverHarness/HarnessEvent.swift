import DroverCore

/// An event the harness writes, typed: each kind's payload is built here, once, with the field
/// names the SDK's models have, instead of a dictionary literal at each place that writes one.
/// (The model's own answers, `span.model_request_*` and `agent.message`/`tool_use`, are logged as
/// the provider's response reads, by `SessionRunner.callModel`.)
enum HarnessEvent: Sendable {
    /// `agent.tool_result`: a call's answer. `details`: what the log keeps beside it (the sandbox,
    /// an exit code, `outcome`, the advisor's usage, …).
    case toolResult(callID: String, content: String, isError: Bool, details: [String: JSONValue] = [:])
    /// `agent.mcp_tool_result`, naming the call's event (`mcp_tool_use_id`).
    case mcpToolResult(eventID: String, content: [JSONValue], isError: Bool, details: [String: JSONValue] = [:])
    /// `session.error`: `retry` is `terminal` (nothing will retry it) or `exhausted`.
    case sessionError(type: String, message: String, retry: String = "terminal", details: [String: JSONValue] = [:])
    /// `span.outcome_evaluation_start` / `_ongoing` (`end`: nil), or `_end` with its verdict.
    case outcomeEvaluation(outcomeID: String, iteration: Int, end: OutcomeEnd? = nil, ongoing: Bool = false)
    /// `session.status_idle` with its `stop_reason`.
    case statusIdle(IdleReason)
    /// A workflow run's event, as `WorkflowProgress` made it.
    case workflow(WorkflowStep.Event)
    /// `workflow_run.error` that kept a run from being created (`workflow_run_id` null).
    case workflowRefused(type: String, message: String)

    struct OutcomeEnd: Sendable {
        var result: String
        var explanation: String
        var usage: JSONValue
        var startID: String
    }

    var type: EventType {
        switch self {
        case .toolResult: .agentToolResult
        case .mcpToolResult: .agentMCPToolResult
        case .sessionError: .sessionError
        case .outcomeEvaluation(_, _, let end, let ongoing):
            end != nil ? .spanOutcomeEvaluationEnd : ongoing ? .spanOutcomeEvaluationOngoing : .spanOutcomeEvaluationStart
        case .statusIdle: .sessionStatusIdle
        case .workflow(let event): event.type
        case .workflowRefused: .workflowRunError
        }
    }

    var payload: JSONValue {
        switch self {
        case .toolResult(let callID, let content, let isError, let details):
            .object(details.merging(["tool_use_id": .string(callID), "content": .string(content), "is_error": .bool(isError)]) { $1 })
        case .mcpToolResult(let eventID, let content, let isError, let details):
            .object(details.merging(["mcp_tool_use_id": .string(eventID), "content": .array(content), "is_error": .bool(isError)]) { $1 })
        case .sessionError(let type, let message, let retry, let details):
            ["error": .object(details.merging(["type": .string(type), "message": .string(message), "retry_status": ["type": .string(retry)]]) { $1 })]
        case .outcomeEvaluation(let outcomeID, let iteration, let end, _):
            .object(["outcome_id": .string(outcomeID), "iteration": .number(Double(iteration))].merging(end.map { end in
                ["result": .string(end.result), "explanation": .string(end.explanation), "usage": end.usage,
                 "outcome_evaluation_start_id": .string(end.startID)]
            } ?? [:]) { $1 })
        case .statusIdle(let reason):
            ["stop_reason": reason.stopReason]
        case .workflow(let event):
            event.payload
        case .workflowRefused(let type, let message):
            ["workflow_run_id": .null, "error": ["type": .string(type), "message": .string(message)]]
        }
    }

    /// As the log stores it: JSON text, any NUL a model or a tool wrote shown as U+2400.
    var logged: (EventType, String) { (type, ToolText.storable(payload).text) }
}
