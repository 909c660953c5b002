import DroverCore

/// An event the harness writes, typed: each kind's payload is built here, once, with the field
/// names the SDK's models have, instead of a dictionary literal at each place that writes one.
enum HarnessEvent: Sendable {
    /// `agent.thread_context_compacted`: the tool results the context view left out, and its size.
    case contextCompacted(elided: [String], tokensBefore: Int, tokensAfter: Int)
    /// `span.model_request_start`: the session's `turn`th model call.
    case modelRequestStart(model: String, turn: Int)
    /// `span.model_request_end`, naming its start.
    case modelRequestEnd(ModelRequestEnd)
    /// `agent.thinking`, as the model wrote it.
    case thinking(text: String, signature: String?)
    /// `agent.message`: one text block.
    case message(text: String)
    /// `agent.tool_use`, `agent.custom_tool_use` (the client runs it) or `agent.mcp_tool_use` (an
    /// MCP server's, named); `ask`: it waits for the user's confirmation.
    case toolUse(ToolUse)
    /// `agent.tool_result`: a call's answer. `details`: what the log keeps beside it (the sandbox,
    /// an exit code, `outcome`, the advisor's usage, …).
    case toolResult(callID: String, content: String, isError: Bool, details: [String: JSONValue] = [:])
    /// `agent.mcp_tool_result`, naming the call's event (`mcp_tool_use_id`).
    case mcpToolResult(eventID: String, content: [JSONValue], isError: Bool, details: [String: JSONValue] = [:])
    /// `session.error`: `retry` is `terminal` (nothing will retry it) or `exhausted`.
    case sessionError(type: String, message: String, retry: String = "terminal", details: [String: JSONValue] = [:])
    /// `span.outcome_evaluation_start` / `_ongoing` (`end`: nil), or `_end` with its verdict.
    case outcomeEvaluation(outcomeID: String, iteration: Int, end: OutcomeEnd? = nil, ongoing: Bool = false)
    /// `session.usage` (a budgeted session's turn ends with it): cumulative tokens, the list cost
    /// where the model has a price, and the budget, in cents.
    case usage(inputTokens: Int, outputTokens: Int, cacheReadTokens: Int, listCostCents: Int64?, maxCents: Int64)
    /// `session.status_idle` with its `stop_reason`.
    case statusIdle(IdleReason)
    /// A workflow run's event, as `WorkflowProgress` made it.
    case workflow(WorkflowStep.Event)
    /// `workflow_run.error` that kept a run from being created (`workflow_run_id` null).
    case workflowRefused(type: String, message: String)

    struct ModelRequestEnd: Sendable {
        var stopReason: String
        var messageID: String
        var usage: JSONValue
        var startID: String
        var timeToFirstTokenMilliseconds: Double?
        var durationMilliseconds: Double
    }

    struct ToolUse: Sendable {
        enum Kind: Sendable { case sandbox, custom, mcp(server: String) }
        var kind: Kind
        var id: String
        var name: String
        var input: JSONValue
        var ask: Bool

        var payload: JSONValue {
            var fields: [String: JSONValue] = ["id": .string(id), "name": .string(name), "input": input]
            if ask { fields["evaluated_permission"] = "ask" }
            if case .mcp(let server) = kind { fields["mcp_server_name"] = .string(server) }
            return .object(fields)
        }
    }

    struct OutcomeEnd: Sendable {
        var result: String
        var explanation: String
        var usage: JSONValue
        var startID: String
    }

    var type: EventType {
        switch self {
        case .contextCompacted: .agentThreadContextCompacted
        case .modelRequestStart: .spanModelRequestStart
        case .modelRequestEnd: .spanModelRequestEnd
        case .thinking: .agentThinking
        case .message: .agentMessage
        case .toolUse(let use):
            switch use.kind {
            case .sandbox: .agentToolUse
            case .custom: .agentCustomToolUse
            case .mcp: .agentMCPToolUse
            }
        case .toolResult: .agentToolResult
        case .mcpToolResult: .agentMCPToolResult
        case .sessionError: .sessionError
        case .outcomeEvaluation(_, _, let end, let ongoing):
            end != nil ? .spanOutcomeEvaluationEnd : ongoing ? .spanOutcomeEvaluationOngoing : .spanOutcomeEvaluationStart
        case .usage: .sessionUsage
        case .statusIdle: .sessionStatusIdle
        case .workflow(let event): event.type
        case .workflowRefused: .workflowRunError
        }
    }

    var payload: JSONValue {
        switch self {
        case .contextCompacted(let elided, let before, let after):
            ["elided_tool_results": .array(elided.map(JSONValue.string)), "estimated_tokens_before": .number(Double(before)),
             "estimated_tokens_after": .number(Double(after))]
        case .modelRequestStart(let model, let turn):
            ["model": .string(model), "turn": .number(Double(turn))]
        case .modelRequestEnd(let end):
            ["stop_reason": .string(end.stopReason), "message_id": .string(end.messageID), "model_usage": end.usage,
             "model_request_start_id": .string(end.startID), "ttft_ms": end.timeToFirstTokenMilliseconds.map(JSONValue.number) ?? .null,
             "duration_ms": .number(end.durationMilliseconds)]
        case .thinking(let text, let signature):
            .object(["thinking": .string(text)].merging(signature.map { ["signature": .string($0)] } ?? [:]) { $1 })
        case .message(let text):
            ["content": [["type": "text", "text": .string(text)]]]
        case .toolUse(let use):
            use.payload
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
        case .usage(let input, let output, let cacheRead, let listCost, let maxCents):
            ["usage": .object([
                "input_tokens": .number(Double(input)), "output_tokens": .number(Double(output)),
                "cache_read_input_tokens": .number(Double(cacheRead)),
             ].merging(listCost.map { ["list_cost": ["amount": .string(String($0)), "currency": "USD"]] } ?? [:]) { $1 }),
             "budget": ["type": "limit", "max_list_cost": ["amount": .string(String(maxCents)), "currency": "USD"]]]
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
