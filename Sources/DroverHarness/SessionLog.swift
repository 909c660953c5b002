import DroverCore

/// A session's log as a runner holds it: what the agent loop needs of the events read so far,
/// each payload parsed once. The runner extends it with only the events after `lastSeq`, so a
/// long session costs one read per step of what is new, not of everything.
///
/// What the planner asks of the log at every step is kept up to date as events are appended
/// (the last entry of each type, the tool uses still without a result, token and model-call
/// counts, the context view's fold), so that deciding a step costs what is open, not the length
/// of the log (issue #27, item 9; `drover bench planner`). The entries themselves are not kept:
/// only the open tool uses' and the last of each type, so a long session's memory is its context
/// view, not every payload twice.
public struct SessionLog: Sendable {
    public struct Entry: Sendable {
        public var event: Event
        public var json: JSONValue
        public var seq: Int64 { event.seq }
        public var type: EventType { event.type }
    }

    /// The highest seq held (0 for an empty log).
    public private(set) var lastSeq: Int64 = 0
    /// The last entry of each type.
    private var lastEntries: [EventType: Entry] = [:]
    /// Tool uses (built-in, custom, MCP) without a result yet, by the model's id, in log order,
    /// and their entries.
    private(set) var openToolUses: [String] = []
    private(set) var openEntries: [String: Entry] = [:]
    /// The model's id of each tool use by its event's API id (clients answer by event id, older
    /// logs and the harness by tool-use id).
    private(set) var toolUseIDs: [String: String] = [:]
    /// `user.tool_confirmation` verdicts by the model's id.
    private(set) var confirmations: [String: Verdict] = [:]

    enum Verdict: Equatable {
        case allow
        case deny(message: String)
    }
    /// Input and output tokens of every model call; model calls since the last idle; all of them.
    private(set) var tokensSpent = 0
    /// Tokens of every model call by kind, which a budget prices (`SpendLimit`).
    private(set) var inputTokens = 0
    private(set) var outputTokens = 0
    private(set) var cacheReadTokens = 0
    private(set) var modelCallsSinceIdle = 0
    private(set) var modelCalls = 0
    /// The context view's fold over every entry so far (`ContextView.Builder`): a view is made
    /// from it without walking the log again.
    private(set) var context = ContextView.Builder()
    /// The outcome being worked toward, if one was defined (`OutcomeProgress`).
    public private(set) var outcome: OutcomeProgress?
    /// Session threads sent a message (at their start, or later) whose reply has not come yet.
    public private(set) var runningThreads: [String] = []
    /// Every thread started, in order, with its agent's name.
    public private(set) var threads: [(id: String, agent: String)] = []
    /// The session's workflow runs (`WorkflowProgress`).
    public private(set) var workflows = WorkflowProgress()
    /// The seq of the last reply of a thread the agent started itself (0: none): input to it. A
    /// workflow run's threads reply to the run, whose end is the agent's input.
    public private(set) var lastThreadReplySeq: Int64 = 0

    public init(events: [Event] = []) { append(events) }

    /// Adds events read after `lastSeq`; anything already held is skipped.
    public mutating func append(_ events: [Event]) {
        for event in events where event.seq > lastSeq {
            let entry = Entry(event: event, json: (try? JSONValue.parse(event.payload)) ?? [:])
            lastSeq = event.seq
            index(entry)
            context.add(entry, workflows: workflows)
        }
    }

    /// The seq of the last event of `type`, or 0.
    public func lastSeq(of type: EventType) -> Int64 {
        lastEntries[type]?.seq ?? 0
    }

    /// The last entry of `type`.
    public func last(_ type: EventType) -> Entry? { lastEntries[type] }

    /// The last entry of any type.
    public private(set) var last: Entry?

    /// The model's id of the tool use a result names (by event id or tool-use id).
    func toolUseID(named: String) -> String { toolUseIDs[named] ?? named }

    private mutating func index(_ entry: Entry) {
        lastEntries[entry.type] = entry
        last = entry
        let json = entry.json
        switch entry.type {
        case .agentToolUse, .agentCustomToolUse, .agentMCPToolUse:
            guard let id = json["id"]?.stringValue else { return }
            toolUseIDs[entry.event.apiID] = id
            openEntries[id] = entry
            openToolUses.append(id)
        case .agentToolResult:
            if let id = json["tool_use_id"]?.stringValue { answer(id) }
            // An advisor's answer (`consult_advisor`): its tokens count against the budgets.
            if let usage = json["drover_advisor"]?["model_usage"] { count(usage) }
        case .userToolResult:
            if let id = json["drover_tool_use_id"]?.stringValue ?? json["tool_use_id"]?.stringValue { answer(toolUseID(named: id)) }
        case .userCustomToolResult:
            if let id = json["custom_tool_use_id"]?.stringValue ?? json["tool_use_id"]?.stringValue { answer(toolUseID(named: id)) }
        case .agentMCPToolResult:
            if let id = json["mcp_tool_use_id"]?.stringValue ?? json["tool_use_id"]?.stringValue { answer(toolUseID(named: id)) }
        case .userToolConfirmation:
            guard let named = json["tool_use_id"]?.stringValue else { return }
            confirmations[toolUseID(named: named)] = json["result"]?.stringValue == "allow"
                ? .allow : .deny(message: json["deny_message"]?.stringValue ?? "The user denied this tool call.")
        case .spanModelRequestEnd:
            // Managed Agents' `model_usage`; logs written before #11 say `usage`.
            count(json["model_usage"] ?? json["usage"])
            modelCallsSinceIdle += 1
            modelCalls += 1
        case .sessionStatusIdle:
            modelCallsSinceIdle = 0
        case .sessionThreadCreated:
            if let thread = json["session_thread_id"]?.stringValue {
                threads.append((thread, json["agent_name"]?.stringValue ?? ""))
                if !runningThreads.contains(thread) { runningThreads.append(thread) }
            }
        case .agentThreadMessageSent:
            if let thread = json["to_session_thread_id"]?.stringValue, !runningThreads.contains(thread) { runningThreads.append(thread) }
        case .agentThreadMessageReceived:
            runningThreads.removeAll { $0 == json["from_session_thread_id"]?.stringValue }
            if !workflows.isWorkflowThread(json["from_session_thread_id"]?.stringValue ?? "") { lastThreadReplySeq = entry.seq }
        case .spanOutcomeEvaluationEnd:
            // A grader's calls are model calls too: a budget counts them.
            count(json["usage"])
        default:
            break
        }
        OutcomeProgress.apply(entry, to: &outcome)
        workflows.apply(entry)
    }

    /// Adds a model call's usage to the token counts a budget reads.
    private mutating func count(_ usage: JSONValue?) {
        tokensSpent += (usage?["input_tokens"]?.intValue ?? 0) + (usage?["output_tokens"]?.intValue ?? 0)
        inputTokens += usage?["input_tokens"]?.intValue ?? 0
        outputTokens += usage?["output_tokens"]?.intValue ?? 0
        cacheReadTokens += usage?["cache_read_input_tokens"]?.intValue ?? 0
    }

    private mutating func answer(_ id: String) {
        openToolUses.removeAll { $0 == id }
        openEntries[id] = nil
    }
}
