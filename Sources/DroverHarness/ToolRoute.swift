/// Who runs a tool call, chosen by the planner (`TurnPlanner`, from the `ToolCatalog` of the
/// wake): the runner performs the route and decides nothing.
public enum ToolRoute: Sendable, Equatable {
    /// A built-in tool, in the session's sandbox (or a self-hosted environment's worker).
    case sandbox
    /// One the harness runs itself (`web_fetch`, `web_search`).
    case harness
    /// A tool of one of the agent's MCP servers.
    case mcp
    /// `create_thread`, `message_thread`.
    case startThread, messageThread
    /// `start_workflow_run`, `stop_workflow_run`.
    case startWorkflow, stopWorkflow
    /// `consult_advisor`.
    case advisor
}

/// The tools a wake offers the agent, by who runs them: what the planner routes calls by. A name
/// not listed is a built-in's, for the sandbox.
public struct ToolCatalog: Sendable, Equatable {
    public var harness: Set<String>
    public var mcp: Set<String>
    public var threads: Bool
    public var workflows: Bool
    public var advisor: Bool

    public init(harness: Set<String> = [], mcp: Set<String> = [], threads: Bool = false, workflows: Bool = false, advisor: Bool = false) {
        self.harness = harness
        self.mcp = mcp
        self.threads = threads
        self.workflows = workflows
        self.advisor = advisor
    }

    public func route(_ name: String) -> ToolRoute {
        if harness.contains(name) { return .harness }
        if threads && name == SessionThreads.toolName { return .startThread }
        if threads && name == SessionThreads.messageToolName { return .messageThread }
        if workflows && name == WorkflowPlan.startToolName { return .startWorkflow }
        if workflows && name == WorkflowPlan.stopToolName { return .stopWorkflow }
        if advisor && name == Advisor.toolName { return .advisor }
        if mcp.contains(name) { return .mcp }
        return .sandbox
    }
}
