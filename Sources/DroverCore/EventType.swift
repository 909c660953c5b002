/// An event type in Managed Agents' vocabulary (`user.message`, `agent.tool_use`, …).
///
/// Who may write which type is enforced by the database: user-side types through `send_event`,
/// `agent.*`, `session.*` and `span.*` only by a lease holder through `append_event`.
public struct EventType: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let userMessage = EventType("user.message")
    public static let userInterrupt = EventType("user.interrupt")
    public static let userToolConfirmation = EventType("user.tool_confirmation")
    public static let userCustomToolResult = EventType("user.custom_tool_result")
    /// A self-hosted environment's worker answering an `agent.tool_use` (`tool_use_id`: that
    /// event's id); the API stores the model's id of the call beside it (`drover_tool_use_id`).
    public static let userToolResult = EventType("user.tool_result")
    /// Privileged text a client sends with a user message or tool result, for that turn and every
    /// later one: the harness appends it to the system prompt.
    public static let systemMessage = EventType("system.message")
    /// An outcome to work toward (`description`, a text `rubric`, `max_iterations`, and the
    /// `outcome_id` the API gave it): the agent works, a grader evaluates, the agent revises.
    public static let userDefineOutcome = EventType("user.define_outcome")

    public static let agentMessage = EventType("agent.message")
    public static let agentThinking = EventType("agent.thinking")
    public static let agentToolUse = EventType("agent.tool_use")
    public static let agentToolResult = EventType("agent.tool_result")
    /// A call of one of the agent's `custom` tools: the client runs it and answers with
    /// `user.custom_tool_result`.
    public static let agentCustomToolUse = EventType("agent.custom_tool_use")
    /// A call of a tool of one of the agent's MCP servers (`mcp_server_name`), which the harness
    /// makes; answered by `agent.mcp_tool_result` (`mcp_tool_use_id` names the use's event).
    public static let agentMCPToolUse = EventType("agent.mcp_tool_use")
    public static let agentMCPToolResult = EventType("agent.mcp_tool_result")
    /// Managed Agents' name for a context compaction; logs written before #11 say
    /// `agent.context_compacted` (`agentContextCompacted`), which is still read.
    public static let agentThreadContextCompacted = EventType("agent.thread_context_compacted")
    public static let agentContextCompacted = EventType("agent.context_compacted")

    public static let sessionStatusRunning = EventType("session.status_running")
    public static let sessionStatusIdle = EventType("session.status_idle")
    /// Written by the claim that resumes a session whose holder stopped without giving it back
    /// (migration 0026), right before that claim's `session.status_running`.
    public static let sessionStatusRescheduled = EventType("session.status_rescheduled")
    public static let sessionError = EventType("session.error")
    /// A budgeted session's cumulative usage and list cost, written as its turn ends.
    public static let sessionUsage = EventType("session.usage")

    /// Session threads (`multiagent`): a thread started by the coordinator, the message it was
    /// sent, its reply and its idle status (the last two written when the thread goes idle).
    public static let sessionThreadCreated = EventType("session.thread_created")
    public static let sessionThreadStatusIdle = EventType("session.thread_status_idle")
    public static let agentThreadMessageSent = EventType("agent.thread_message_sent")
    public static let agentThreadMessageReceived = EventType("agent.thread_message_received")

    /// Workflow runs (`multiagent.workflows`): background work the agent starts, whose plan runs
    /// phase by phase, each phase's threads at once (the harness writes them; `WorkflowProgress`).
    public static let workflowRunCreated = EventType("workflow_run.created")
    public static let workflowRunStatusRunning = EventType("workflow_run.status_running")
    public static let workflowRunPhaseStarted = EventType("workflow_run.phase_started")
    public static let workflowRunPhaseEnded = EventType("workflow_run.phase_ended")
    public static let workflowRunError = EventType("workflow_run.error")
    public static let workflowRunStatusEnded = EventType("workflow_run.status_ended")

    public static let spanModelRequestStart = EventType("span.model_request_start")
    public static let spanModelRequestEnd = EventType("span.model_request_end")
    /// An outcome's evaluation: its start, heartbeats while the grader works, and its end with
    /// the verdict (`result`, `explanation`, `usage`).
    public static let spanOutcomeEvaluationStart = EventType("span.outcome_evaluation_start")
    public static let spanOutcomeEvaluationOngoing = EventType("span.outcome_evaluation_ongoing")
    public static let spanOutcomeEvaluationEnd = EventType("span.outcome_evaluation_end")

    /// Types a user (not a lease holder) may send.
    public static let userSide: Set<EventType> = [
        .userMessage, .userInterrupt, .userToolConfirmation, .userCustomToolResult, .userToolResult, .systemMessage, .userDefineOutcome,
    ]

    /// A tool use of any kind (built-in, custom, MCP): each gets exactly one result.
    public var isToolUse: Bool { self == .agentToolUse || self == .agentCustomToolUse || self == .agentMCPToolUse }

    /// Whether this is a user-side type.
    public var isUserSide: Bool { Self.userSide.contains(self) }
}
