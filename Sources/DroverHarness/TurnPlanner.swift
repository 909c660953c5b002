import DroverCore
import DroverModel
import Foundation

/// A tool use the log holds without a result.
public struct PendingToolUse: Sendable, Equatable {
    /// The model's tool-use id (`toolu_…`), which results name.
    public var id: String
    public var name: String
    public var input: JSONValue
    /// Logged under an earlier lease: a harness that died may already have sent it, so if its
    /// sandbox is gone the outcome is unknown, not "never ran".
    public var recovering: Bool
    /// The id of its event as the API shows it (`sevt_…`), which clients answer to.
    public var eventID: String = ""
    public var status: Status = .run
    /// Who runs it (the wake's `ToolCatalog`).
    public var route: ToolRoute = .sandbox

    public enum Status: Sendable, Equatable {
        /// Run it in the sandbox.
        case run
        /// The user denied it (`user.tool_confirmation` deny): log the denial as its result.
        case denied(String)
        /// Its tool is `always_ask`: it waits for `user.tool_confirmation`.
        case awaitingConfirmation
        /// A `custom` tool: the client runs it and answers with `user.custom_tool_result`.
        case awaitingClient
        /// A sandbox tool of a self-hosted environment: a worker runs it and answers with
        /// `user.tool_result`; the session stays running meanwhile.
        case awaitingWorker
        /// ... and no worker answered within the environment's deadline: an error result says so.
        case workerDeadlinePassed
    }

    public var isWaiting: Bool { status == .awaitingConfirmation || status == .awaitingClient }
}

/// Why a turn ended. On the wire and in the log it is Managed Agents' `stop_reason` object
/// (`end_turn`, `requires_action {event_ids}`, `retries_exhausted`, `budget_reached`,
/// `refusal`); Drover's own outcomes use the nearest of those with `drover_reason` saying which.
public enum IdleReason: Sendable, Equatable {
    case endTurn
    /// A `user.interrupt` ended the turn (`end_turn`, drover_reason `interrupted`).
    case interrupted
    /// A failure the harness could not get past (`retries_exhausted`, drover_reason `error`).
    case error
    /// The agent's turn limit (`end_turn`, drover_reason `max_turns`).
    case maxTurns
    case budgetReached
    /// The session was claimed again and again without its turn ending (each claim's harness
    /// died), so it is closed instead of taking down the fleet.
    case retriesExhausted
    /// The model refused to go on.
    case refusal
    /// Tool uses wait for the client: custom tool results or confirmations (their event ids).
    case requiresAction([String])

    /// The name for metrics and logs (`drover_reason` when there is one, else the type).
    public var name: String {
        switch self {
        case .endTurn: "end_turn"
        case .interrupted: "interrupted"
        case .error: "error"
        case .maxTurns: "max_turns"
        case .budgetReached: "budget_reached"
        case .retriesExhausted: "retries_exhausted"
        case .refusal: "refusal"
        case .requiresAction: "requires_action"
        }
    }

    /// `session.status_idle`'s `stop_reason`.
    public var stopReason: JSONValue {
        switch self {
        case .endTurn: ["type": "end_turn"]
        case .interrupted: ["type": "end_turn", "drover_reason": "interrupted"]
        case .maxTurns: ["type": "end_turn", "drover_reason": "max_turns"]
        case .error: ["type": "retries_exhausted", "drover_reason": "error"]
        case .budgetReached: ["type": "budget_reached"]
        case .retriesExhausted: ["type": "retries_exhausted"]
        case .refusal: ["type": "refusal"]
        case .requiresAction(let ids): ["type": "requires_action", "event_ids": .array(ids.map(JSONValue.string))]
        }
    }
}

/// Which calls a self-hosted environment's workers run, and how long each may wait for one.
public struct WorkerRouting: Sendable, Equatable {
    /// The sandbox tools (`agent.tool_use` of these names go to the worker).
    public var tools: Set<String>
    /// Seconds from a call's `agent.tool_use` to its error result when no worker answered.
    public var deadline: Double

    public init(tools: Set<String>, deadline: Double) {
        self.tools = tools
        self.deadline = deadline
    }
}

/// What a runner does next, decided from the log alone.
public enum TurnStep: Sendable, Equatable {
    /// Run these logged tool uses (in parallel) and log each result.
    case runTools([PendingToolUse])
    /// These calls wait for a self-hosted worker's `user.tool_result`: wait for a user event, or
    /// until `until` (the first call's deadline), then plan again.
    case awaitWorker([PendingToolUse], until: Date)
    /// Call the model with this view; `compacted` is the list of elided tool results to log as
    /// `agent.thread_context_compacted` first, when the view elides something new.
    case callModel(ContextView, compacted: [String]?)
    /// The coordinator's turn is over but these threads have not replied, or its workflow runs
    /// have not ended: wait for a reply (a user event of the session rings), then plan again.
    case awaitThreads([String])
    /// A workflow run needs its next step (`WorkflowProgress`): take it, then plan again.
    case advanceWorkflow(WorkflowStep)
    /// The agent's attempt at the session's outcome ended: grade it (`OutcomeGrader`) and log
    /// the verdict; a revision or the final acknowledgement follows as the log then says.
    case evaluateOutcome(OutcomeEvaluation)
    /// End the turn: answer `unanswered` tool uses with an error result, append
    /// `session.status_idle` and release. `handledThrough` is the last seq this decision read;
    /// a user event after it makes the release re-queue the session.
    case finish(IdleReason, unanswered: [PendingToolUse], handledThrough: Int64)
}

/// The agent loop's decisions as a pure function of the log: no I/O, so every ordering of a log,
/// including each point a harness could die at, is a row in a table test.
///
/// The log is the only state: a successor after a crash plans from what was written and so
/// continues exactly where its predecessor stopped. In order:
/// 1. a session claimed `maxAttempts` times in a row without a clean release ends as
///    `retries_exhausted` (whatever processing it kills its harnesses with is not repeated);
/// 2. an interrupt newer than the last idle and the last user message ends the turn;
/// 3. tool uses without results are run; then the next step of a workflow run is taken;
/// 4. a turn the log already ended (the model answered without tool uses and no user input came
///    after the request) is finished without calling the model again, unless an outcome is under
///    way: its evaluation comes first (`OutcomeProgress`);
/// 5. the turn limit, the token budget and the session's spend limit end the turn;
/// 6. otherwise the model is called with the context view.
public struct TurnPlanner: Sendable {
    public var epoch: Int64
    public var maxTurns: Int
    public var tokenBudget: Int?
    /// The session's budget in money (`sessions.create(budget=…)`), priced from the operator's
    /// table; nil when the session has none.
    public var spendLimit: SpendLimit?
    public var contextBudgetTokens: Int
    /// Consecutive claims without a clean release (this one included), and the most allowed.
    public var attempt: Int
    public var maxAttempts: Int
    /// Set for a self-hosted environment: its sandbox tools are the worker's to run.
    public var worker: WorkerRouting?
    /// The tools this wake offers, by who runs them: each call's route.
    public var tools = ToolCatalog()

    public init(
        epoch: Int64, maxTurns: Int, tokenBudget: Int?, contextBudgetTokens: Int, attempt: Int = 1, maxAttempts: Int = 5,
        worker: WorkerRouting? = nil
    ) {
        self.worker = worker
        self.epoch = epoch
        self.maxTurns = maxTurns
        self.tokenBudget = tokenBudget
        self.contextBudgetTokens = contextBudgetTokens
        self.attempt = attempt
        self.maxAttempts = maxAttempts
    }

    /// `now`: the wall clock, against which a worker's deadline is read (the log's times are the
    /// database's).
    public func next(_ log: SessionLog, now: Date = Date()) -> TurnStep {
        let pending = Self.pendingToolUses(log, epoch: epoch, worker: worker, tools: tools, now: now)
        func finish(_ reason: IdleReason) -> TurnStep { .finish(reason, unanswered: pending, handledThrough: log.lastSeq) }
        if attempt > maxAttempts { return finish(.retriesExhausted) }
        if Self.hasUnhandledInterrupt(log) { return finish(.interrupted) }
        let runnable = pending.filter { !$0.isWaiting && $0.status != .awaitingWorker }
        if !runnable.isEmpty { return .runTools(runnable) }
        if let step = log.workflows.next(now: now) { return .advanceWorkflow(step) }
        let withWorker = pending.filter { $0.status == .awaitingWorker }
        if let worker, !withWorker.isEmpty {
            // A call's deadline counts from its agent.tool_use, whichever harness logged it.
            let first = withWorker.compactMap { log.openEntries[$0.id]?.event.createdAt }.min() ?? now
            return .awaitWorker(withWorker, until: first.addingTimeInterval(worker.deadline))
        }
        // What waits for the client stays unanswered: the session idles until it answers.
        if !pending.isEmpty { return .finish(.requiresAction(pending.map(\.eventID)), unanswered: [], handledThrough: log.lastSeq) }
        if Self.turnIsOver(log) {
            // Threads still working reply before the turn may end: their replies are input; so do
            // workflow runs (their ends are).
            if !log.runningThreads.isEmpty || !log.workflows.openRuns.isEmpty { return .awaitThreads(log.runningThreads + log.workflows.openRuns) }
            // An outcome under way is graded before the turn may end (its verdict decides).
            if !Self.lastAnswerRefused(log), let evaluation = log.outcome?.nextEvaluation {
                // A grader's call is a model call: the budgets hold for it too.
                return budgetReached(log) ? finish(.budgetReached) : .evaluateOutcome(evaluation)
            }
            return finish(Self.lastAnswerRefused(log) ? .refusal : .endTurn)
        }
        if Self.modelCallsThisRun(log) >= maxTurns { return finish(.maxTurns) }
        if budgetReached(log) { return finish(.budgetReached) }
        let view = ContextView(log: log, budgetTokens: contextBudgetTokens)
        let compacted = !view.elided.isEmpty && view.elided != Self.lastCompacted(log) ? view.elided : nil
        return .callModel(view, compacted: compacted)
    }

    /// Whether the log's model calls have spent the token budget or the session's money budget.
    func budgetReached(_ log: SessionLog) -> Bool {
        if let tokenBudget, Self.tokensSpent(log) >= tokenBudget { return true }
        return spendLimit?.isReached(by: log) ?? false
    }

    /// Tool uses (built-in and custom) with no result yet, in log order, with what each waits for.
    /// The log keeps them as they are appended (`SessionLog.openToolUses`), so this costs what is
    /// open, not the log's length.
    static func pendingToolUses(_ log: SessionLog, epoch: Int64, worker: WorkerRouting? = nil, tools: ToolCatalog = ToolCatalog(),
                                now: Date = Date()) -> [PendingToolUse] {
        log.openToolUses.compactMap { id in
            guard let entry = log.openEntries[id] else { return nil }
            var status = PendingToolUse.Status.run
            if entry.type == .agentCustomToolUse {
                status = .awaitingClient
            } else if entry.json["evaluated_permission"]?.stringValue == "ask" {
                switch log.confirmations[id] {
                case .allow?: status = .run
                case .deny(let message)?: status = .denied(message)
                case nil: status = .awaitingConfirmation
                }
            }
            let name = entry.json["name"]?.stringValue ?? ""
            if status == .run, entry.type == .agentToolUse, let worker, worker.tools.contains(name) {
                status = now.timeIntervalSince(entry.event.createdAt) >= worker.deadline ? .workerDeadlinePassed : .awaitingWorker
            }
            return PendingToolUse(
                id: id, name: name, input: entry.json["input"] ?? [:],
                recovering: entry.event.leaseEpoch != epoch, eventID: entry.event.apiID, status: status,
                route: tools.route(name))
        }
    }

    /// Whether the model's last answer was a refusal (its `stop_reason`).
    static func lastAnswerRefused(_ log: SessionLog) -> Bool {
        log.last(.spanModelRequestEnd)?.json["stop_reason"]?.stringValue == "refusal"
    }

    /// An interrupt newer than both the last idle status and the last user message.
    static func hasUnhandledInterrupt(_ log: SessionLog) -> Bool {
        log.lastSeq(of: .userInterrupt) > max(log.lastSeq(of: .sessionStatusIdle), log.lastSeq(of: .userMessage), log.lastSeq(of: .userDefineOutcome))
    }

    /// Whether nothing is left to answer: no user input since the last model request, and that
    /// request either completed without asking for tools or its turn was already closed.
    static func turnIsOver(_ log: SessionLog) -> Bool {
        let request = log.lastSeq(of: .spanModelRequestStart)
        // A grader's verdict the agent must answer (a revision, the final acknowledgement) is input too.
        // So are a thread's reply and a workflow run's end.
        let input = max([EventType.userMessage, .userCustomToolResult, .userToolConfirmation, .userDefineOutcome].map(log.lastSeq(of:)).max() ?? 0,
                        log.outcome?.feedbackSeq ?? 0, log.lastThreadReplySeq, log.workflows.lastEndSeq)
        if input > request { return false }
        if request == 0 { return true }
        if log.lastSeq(of: .sessionStatusIdle) > request { return true }
        guard log.lastSeq(of: .spanModelRequestEnd) > request else { return false }
        return ([EventType.agentToolUse, .agentCustomToolUse, .agentMCPToolUse].map(log.lastSeq(of:)).max() ?? 0) <= request
    }

    /// Model calls since the session last went idle: the turn limit counts across harnesses.
    static func modelCallsThisRun(_ log: SessionLog) -> Int { log.modelCallsSinceIdle }

    /// Input and output tokens of every model call in the log.
    static func tokensSpent(_ log: SessionLog) -> Int { log.tokensSpent }

    static func lastCompacted(_ log: SessionLog) -> [String] {
        let entry = [log.last(.agentThreadContextCompacted), log.last(.agentContextCompacted)].compactMap { $0 }.max { $0.seq < $1.seq }
        guard case .array(let ids)? = entry?.json["elided_tool_results"] else { return [] }
        return ids.compactMap(\.stringValue)
    }
}
