import DroverCore
import DroverModel

/// A tool use the log holds without a result.
public struct PendingToolUse: Sendable, Equatable {
    public var id: String
    public var name: String
    public var input: JSONValue
    /// Logged under an earlier lease: a harness that died may already have sent it, so if its
    /// sandbox is gone the outcome is unknown, not "never ran".
    public var recovering: Bool
}

/// Why a turn ended, as `session.status_idle`'s `stop_reason.type` says.
public enum IdleReason: String, Sendable, Equatable {
    case endTurn = "end_turn"
    case interrupted
    case error
    case maxTurns = "max_turns"
    case budgetReached = "budget_reached"
    /// Managed Agents' name: the session was claimed again and again without its turn ending
    /// (each claim's harness died), so it is closed instead of taking down the fleet.
    case retriesExhausted = "retries_exhausted"
}

/// What a runner does next, decided from the log alone.
public enum TurnStep: Sendable, Equatable {
    /// Run these logged tool uses (in parallel) and log each result.
    case runTools([PendingToolUse])
    /// Call the model with this view; `compacted` is the list of elided tool results to log as
    /// `agent.context_compacted` first, when the view elides something new.
    case callModel(ContextView, compacted: [String]?)
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
/// 3. tool uses without results are run;
/// 4. a turn the log already ended (the model answered without tool uses and no user input came
///    after the request) is finished without calling the model again;
/// 5. the turn limit and the token budget end the turn;
/// 6. otherwise the model is called with the context view.
public struct TurnPlanner: Sendable {
    public var epoch: Int64
    public var maxTurns: Int
    public var tokenBudget: Int?
    public var contextBudgetTokens: Int
    /// Consecutive claims without a clean release (this one included), and the most allowed.
    public var attempt: Int
    public var maxAttempts: Int

    public init(epoch: Int64, maxTurns: Int, tokenBudget: Int?, contextBudgetTokens: Int, attempt: Int = 1, maxAttempts: Int = 5) {
        self.epoch = epoch
        self.maxTurns = maxTurns
        self.tokenBudget = tokenBudget
        self.contextBudgetTokens = contextBudgetTokens
        self.attempt = attempt
        self.maxAttempts = maxAttempts
    }

    public func next(_ log: SessionLog) -> TurnStep {
        let pending = Self.pendingToolUses(log, epoch: epoch)
        func finish(_ reason: IdleReason) -> TurnStep { .finish(reason, unanswered: pending, handledThrough: log.lastSeq) }
        if attempt > maxAttempts { return finish(.retriesExhausted) }
        if Self.hasUnhandledInterrupt(log) { return finish(.interrupted) }
        if !pending.isEmpty { return .runTools(pending) }
        if Self.turnIsOver(log) { return finish(.endTurn) }
        if Self.modelCallsThisRun(log) >= maxTurns { return finish(.maxTurns) }
        if let tokenBudget, Self.tokensSpent(log) >= tokenBudget { return finish(.budgetReached) }
        let view = ContextView(log: log, budgetTokens: contextBudgetTokens)
        let compacted = !view.elided.isEmpty && view.elided != Self.lastCompacted(log) ? view.elided : nil
        return .callModel(view, compacted: compacted)
    }

    /// Tool uses with no result yet, in log order.
    static func pendingToolUses(_ log: SessionLog, epoch: Int64) -> [PendingToolUse] {
        var answered = Set<String>()
        for entry in log.entries where entry.type == .agentToolResult || entry.type == .userCustomToolResult {
            if let id = entry.json["tool_use_id"]?.stringValue { answered.insert(id) }
        }
        return log.entries.compactMap { entry in
            guard entry.type == .agentToolUse, let id = entry.json["id"]?.stringValue, !answered.contains(id) else { return nil }
            return PendingToolUse(
                id: id, name: entry.json["name"]?.stringValue ?? "", input: entry.json["input"] ?? [:],
                recovering: entry.event.leaseEpoch != epoch)
        }
    }

    /// An interrupt newer than both the last idle status and the last user message.
    static func hasUnhandledInterrupt(_ log: SessionLog) -> Bool {
        log.lastSeq(of: .userInterrupt) > max(log.lastSeq(of: .sessionStatusIdle), log.lastSeq(of: .userMessage))
    }

    /// Whether nothing is left to answer: no user input since the last model request, and that
    /// request either completed without asking for tools or its turn was already closed.
    static func turnIsOver(_ log: SessionLog) -> Bool {
        let request = log.lastSeq(of: .spanModelRequestStart)
        let inputSince = log.entries.contains { ($0.type == .userMessage || $0.type == .userCustomToolResult) && $0.seq > request }
        if inputSince { return false }
        if request == 0 { return true }
        if log.lastSeq(of: .sessionStatusIdle) > request { return true }
        guard log.lastSeq(of: .spanModelRequestEnd) > request else { return false }
        return !log.entries.contains { $0.type == .agentToolUse && $0.seq > request }
    }

    /// Model calls since the session last went idle: the turn limit counts across harnesses.
    static func modelCallsThisRun(_ log: SessionLog) -> Int {
        let idle = log.lastSeq(of: .sessionStatusIdle)
        return log.entries.filter { $0.type == .spanModelRequestEnd && $0.seq > idle }.count
    }

    /// Input and output tokens of every model call in the log.
    static func tokensSpent(_ log: SessionLog) -> Int {
        log.entries.filter { $0.type == .spanModelRequestEnd }.reduce(0) { total, entry in
            // Managed Agents' `model_usage`; logs written before #11 say `usage`.
            let usage = entry.json["model_usage"] ?? entry.json["usage"]
            return total + (usage?["input_tokens"]?.intValue ?? 0) + (usage?["output_tokens"]?.intValue ?? 0)
        }
    }

    static func lastCompacted(_ log: SessionLog) -> [String] {
        guard let entry = log.entries.last(where: { $0.type == .agentContextCompacted }),
              case .array(let ids)? = entry.json["elided_tool_results"] else { return [] }
        return ids.compactMap(\.stringValue)
    }
}
