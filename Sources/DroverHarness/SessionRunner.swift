import DroverCore
import DroverModel
import DroverStore
import Foundation
import Synchronization

/// What a harness gives every session it runs.
struct HarnessContext: Sendable {
    var store: SessionStore
    var queue: LeaseQueue
    var provider: any ModelProvider
    var router: SandboxRouter
    var agents: AgentCache
    var options: HarnessOptions
    var log: Log
    var metrics: HarnessMetrics
    /// Every session's writes share commits through it (one transaction for all that are ready).
    var committer: GroupCommitter
}

/// Runs one session under one lease: `wake(sessionId)`.
///
/// The log is the only state. The runner reads it, builds the model's context as a view of it,
/// calls the model, appends every step, runs tool calls (in parallel) and repeats until the model
/// ends its turn, then appends `session.status_idle` and releases the lease. Each step re-reads
/// the log, so user events sent meanwhile are taken in order at the next turn boundary, and a
/// successor after a crash resumes from exactly what was written: a tool call logged without a
/// result is re-sent with the same call id, a model call cut off is made again.
final class SessionRunner: Sendable {
    enum StopReason: Sendable, Equatable {
        case interrupt
        case leaseLost
        case handOff
    }

    let lease: Lease
    let context: HarnessContext
    let log: Log

    private struct State {
        var machine: LeaseStateMachine
        var lastSeq: Int64
        var stopReason: StopReason?
        var drainRequested = false
        var work: Task<Void, Never>?
    }

    private let state: Mutex<State>

    init(lease: Lease, claimSentAt: Double, context: HarnessContext) {
        self.lease = lease
        self.context = context
        self.log = context.log.with(("session", .string(lease.sessionID.rawValue)), ("epoch", .number(Double(lease.epoch))))
        state = Mutex(State(machine: LeaseStateMachine(claimSentAt: claimSentAt, ttl: context.options.leaseTTL), lastSeq: lease.lastSeq))
    }

    /// Runs until the session goes idle, is handed off, or the lease is lost.
    func run() async {
        let work = Task { await self.drive() }
        let cancelNow = state.withLock { state -> Bool in
            state.work = work
            return state.stopReason != nil
        }
        if cancelNow { work.cancel() }
        await work.value
    }

    // MARK: - Control from the harness

    /// Advances the lease clock; returns what the harness must do for this lease.
    func tick(now: Double) -> LeaseStateMachine.Action {
        state.withLock { $0.machine.tick(now: now) }
    }

    func heartbeatSucceeded() { state.withLock { $0.machine.heartbeatSucceeded() } }

    func heartbeatFailed(leaseLost: Bool, now: Double) -> LeaseStateMachine.Action {
        state.withLock { $0.machine.heartbeatFailed(leaseLost: leaseLost, now: now) }
    }

    /// Stops the work at once for `reason` (lease lost, interrupt, or the end of the drain grace).
    func stop(_ reason: StopReason) {
        let work = state.withLock { state -> Task<Void, Never>? in
            if state.stopReason == nil || reason == .leaseLost { state.stopReason = reason }
            return state.work
        }
        work?.cancel()
    }

    /// Asks the runner to hand the session off at its next step boundary (SIGTERM).
    func requestDrain() { state.withLock { $0.drainRequested = true } }

    /// A user event arrived for this session: if it is an interrupt, stop the current step.
    func userEventArrived() async {
        let after = state.withLock { $0.lastSeq }
        guard let events = try? await context.store.events(lease.sessionID, after: after, limit: 100, types: [.userInterrupt]),
              !events.isEmpty else { return }
        log.info("interrupt received")
        stop(.interrupt)
    }

    // MARK: - The loop

    private func drive() async {
        do {
            try await loop()
        } catch {
            await conclude(after: error)
        }
        context.router.forget(lease.sessionID)
    }

    private func loop() async throws {
        var (agentID, agentVersion, environmentID) = (lease.agentID, lease.agentVersion, lease.environmentID)
        if agentID == nil || agentVersion == nil || environmentID == nil {
            let session = try await context.store.session(lease.sessionID)
            (agentID, agentVersion, environmentID) = (session.agentID, session.agentVersion, session.environmentID)
        }
        let agent = try await context.agents.agent(id: agentID!, version: agentVersion!, store: context.store)
        let environment = try await context.agents.environment(id: environmentID!, store: context.store)
        let resources = (try? JSONValue.parse(environment.configJSON))?["resources"]
        var events = try await readAll()
        var opening: [(EventType, String)] = [(.sessionStatusRunning, "{}")]
        if context.options.eagerSandbox {
            try await context.router.ensureSandbox(for: lease.sessionID, resources: resources)
        }
        var turns = 0
        while true {
            try checkDrain()
            let pending = Self.pendingToolUses(events)
            if !pending.isEmpty {
                try await write(opening)
                opening = []
                try await runTools(pending, resources: resources, recovering: true)
                events = try await readAll()
                continue
            }
            if Self.hasUnhandledInterrupt(events) {
                try await finish(.interrupted, extra: opening)
                return
            }
            if turns >= agent.maxTurns {
                try await finish(.maxTurns, extra: opening)
                return
            }
            if let budget = agent.tokenBudget, Self.tokensSpent(events) >= budget {
                try await finish(.budgetReached, extra: opening)
                return
            }
            let view = ContextView(events: events, budgetTokens: agent.contextBudgetTokens)
            var before = opening
            opening = []
            if !view.elided.isEmpty && view.elided != Self.lastCompacted(events) {
                before.append((.agentContextCompacted, JSONValue.object([
                    "elided_tool_results": .array(view.elided.map(JSONValue.string)),
                    "estimated_tokens_before": .number(Double(view.estimatedTokens.before)),
                    "estimated_tokens_after": .number(Double(view.estimatedTokens.after)),
                ]).text))
            }
            // Turns count model calls over the whole log, across wakes and harnesses.
            let turn = events.filter { $0.type == .spanModelRequestEnd }.count + 1
            before.append((.spanModelRequestStart, JSONValue.object(["model": .string(agent.model), "turn": .number(Double(turn))]).text))
            // The request goes out while its start is being logged: a model call has no side
            // effects, so logging it first would only add a commit to the time to first token.
            let started = ContinuousClock.now
            let firstToken = Mutex<Duration?>(nil)
            let request = ModelRequest(
                model: agent.model, system: agent.systemPrompt, messages: view.messages, tools: agent.tools,
                maxTokens: agent.maxTokens, userID: lease.sessionID.rawValue)
            let provider = context.provider
            let call = Task {
                try await provider.complete(request) {
                    firstToken.withLock { if $0 == nil { $0 = ContinuousClock.now - started } }
                }
            }
            let response: ModelResponse
            do {
                try await write(before)
                response = try await withTaskCancellationHandler { try await call.value } onCancel: { call.cancel() }
            } catch {
                call.cancel()
                if let error = error as? ModelError { context.metrics.modelRequests.inc(["outcome": error.code.rawValue]) }
                throw error
            }
            context.metrics.modelRequests.inc(["outcome": "ok"])
            context.metrics.tokens.inc(["kind": "input"], by: Double(response.usage.inputTokens))
            context.metrics.tokens.inc(["kind": "output"], by: Double(response.usage.outputTokens))
            if let ttft = firstToken.withLock({ $0 }) { context.metrics.timeToFirstToken.observe(ttft / .seconds(1)) }
            turns += 1
            var after: [(EventType, String)] = [(.spanModelRequestEnd, JSONValue.object([
                "stop_reason": .string(response.stopReason), "message_id": .string(response.id),
                "usage": ["input_tokens": .number(Double(response.usage.inputTokens)), "output_tokens": .number(Double(response.usage.outputTokens))],
                "ttft_ms": firstToken.withLock { $0 }.map { .number(($0 / .milliseconds(1)).rounded()) } ?? .null,
                "duration_ms": .number(((ContinuousClock.now - started) / .milliseconds(1)).rounded()),
            ]).text)]
            var toolUses: [PendingToolUse] = []
            for block in response.content {
                switch block {
                case .thinking(let text, let signature):
                    var payload: [String: JSONValue] = ["thinking": .string(text)]
                    if let signature { payload["signature"] = .string(signature) }
                    after.append((.agentThinking, JSONValue.object(payload).text))
                case .text(let text):
                    after.append((.agentMessage, JSONValue.object(["content": [["type": "text", "text": .string(text)]]]).text))
                case .toolUse(let id, let name, let input):
                    after.append((.agentToolUse, JSONValue.object(["id": .string(id), "name": .string(name), "input": input]).text))
                    toolUses.append(PendingToolUse(id: id, name: name, input: input))
                case .toolResult:
                    continue
                }
            }
            // The tool uses are logged before any is sent, so a successor knows what was asked.
            try await write(after)
            if !toolUses.isEmpty {
                try await runTools(toolUses, resources: resources, recovering: false)
            }
            events = try await readAll()
            if !toolUses.isEmpty { continue }
            // The turn is over, unless the user said more meanwhile: answer that in the next turn.
            let lastRequest = events.last(where: { $0.type == .spanModelRequestStart })?.seq ?? 0
            if events.contains(where: { $0.type == .userMessage && $0.seq > lastRequest }) { continue }
            try await finish(.endTurn, extra: [])
            return
        }
    }

    struct PendingToolUse: Sendable {
        var id: String
        var name: String
        var input: JSONValue
    }

    /// Runs tool calls in parallel and logs each result.
    private func runTools(_ calls: [PendingToolUse], resources: JSONValue?, recovering: Bool) async throws {
        let router = context.router
        let session = lease.sessionID
        try await withThrowingTaskGroup(of: Void.self) { group in
            for call in calls {
                let metrics = context.metrics
                group.addTask {
                    let started = ContinuousClock.now
                    let outcome = try await router.execute(
                        session: session, callID: call.id, name: call.name, input: call.input, resources: resources, recovering: recovering)
                    metrics.toolCalls.inc(["tool": call.name, "outcome": outcome.isError ? "is_error" : "ok"])
                    metrics.toolSeconds.observe((ContinuousClock.now - started) / .seconds(1), ["tool": call.name])
                    try Task.checkCancellation()
                    var payload: [String: JSONValue] = [
                        "tool_use_id": .string(call.id), "content": .string(outcome.content), "is_error": .bool(outcome.isError),
                    ]
                    for (key, value) in outcome.details { payload[key] = value }
                    try await self.write([(.agentToolResult, JSONValue.object(payload).text)])
                }
            }
            try await group.waitForAll()
        }
    }

    // MARK: - Ending

    enum IdleReason: String {
        case endTurn = "end_turn"
        case interrupted
        case error
        case maxTurns = "max_turns"
        case budgetReached = "budget_reached"
    }

    private func finish(_ reason: IdleReason, extra: [(EventType, String)]) async throws {
        var closing = extra
        // Every tool use gets exactly one result: calls cut off by the ending say so.
        let why = reason == .interrupted ? "Interrupted by the user before a result arrived." : "The turn ended (\(reason.rawValue)) before a result arrived."
        for call in Self.pendingToolUses(try await readAll()) {
            closing.append((.agentToolResult, JSONValue.object([
                "tool_use_id": .string(call.id), "content": .string(why), "is_error": true,
                "outcome": .string(reason == .interrupted ? "interrupted" : "unknown"),
            ]).text))
        }
        closing.append((.sessionStatusIdle, JSONValue.object(["stop_reason": ["type": .string(reason.rawValue)]]).text))
        // The closing events and the release commit together: the log never says idle while the
        // lease is still held, and it costs one commit.
        let handled = state.withLock { $0.lastSeq }
        let writes = closing.map { LeaseWrite.append(lease, $0.0, payload: $0.1) }
            + [.release(lease, to: .idle, handledThrough: handled)]
        var status = SessionStatus.idle
        for outcome in await context.committer.submitAll(writes) {
            if case .released(let released) = try outcome.get() { status = released }
        }
        context.metrics.released.inc(["stop_reason": reason.rawValue])
        log.info("session idle", ("stop_reason", .string(reason.rawValue)), ("released_to", .string(status.rawValue)))
    }

    /// After the loop threw: decide what the session's log and lease get.
    private func conclude(after error: any Error) async {
        let reason = state.withLock { $0.stopReason }
        if reason == .leaseLost || (error as? DroverError)?.code == .leaseLost {
            context.metrics.leasesLost.inc()
            log.warning("lease lost: stopped without writing")
            return
        }
        do {
            switch reason {
            case .interrupt:
                try await finish(.interrupted, extra: [])
            case .handOff:
                try await handOff()
            case .leaseLost:
                return
            case nil:
                if error is DrainSignal {
                    try await handOff()
                    return
                }
                if Self.isTransient(error) {
                    // The database went away mid-step: the log is the truth, so give the session
                    // back rather than close it; if even that fails, the lease expires and a
                    // harness resumes it from the log.
                    log.warning("database unreachable: giving the session back", ("error", .string(String(reflecting: error))))
                    for attempt in 1...5 {
                        do {
                            try await handOff()
                            return
                        } catch let error as DroverError where error.code == .leaseLost {
                            return
                        } catch {
                            try? await Task.sleep(for: .milliseconds(200 * attempt))
                        }
                    }
                    log.warning("could not give the session back; its lease will expire")
                    return
                }
                let (code, message) = Self.describe(error)
                log.error("session failed", ("code", .string(code)), ("error", .string(message)))
                try await finish(.error, extra: [(.sessionError, JSONValue.object([
                    "error": ["type": .string(code), "message": .string(message)],
                ]).text)])
            }
        } catch {
            log.error("could not close the session", ("error", .string(String(reflecting: error))))
        }
    }

    /// Gives the session back, runnable, so another harness resumes it now rather than after the TTL.
    private func handOff() async throws {
        let handled = state.withLock { $0.lastSeq }
        try await context.queue.release(lease, to: .queued, handledThrough: handled)
        context.metrics.released.inc(["stop_reason": "handed_off"])
        log.info("session handed off")
    }

    private struct DrainSignal: Error {}

    private func checkDrain() throws {
        if state.withLock({ $0.drainRequested }) { throw DrainSignal() }
    }

    /// A failure of the database connection, not of the session: the step's outcome is unknown.
    static func isTransient(_ error: any Error) -> Bool {
        (error as? DroverError)?.code == .connectionLost
    }

    static func describe(_ error: any Error) -> (String, String) {
        switch error {
        case let error as ModelError: return ("model_" + error.code.rawValue, error.message)
        case let error as DroverError: return (error.code.rawValue, error.message)
        default: return ("internal", String(describing: error))
        }
    }

    // MARK: - Log helpers

    /// Appends in order, in one transaction, sharing the commit with other sessions' writes.
    private func write(_ events: [(EventType, String)]) async throws {
        guard !events.isEmpty else { return }
        var last: Int64 = 0
        for outcome in await context.committer.submitAll(events.map { .append(lease, $0.0, payload: $0.1) }) {
            if case .appended(let event) = try outcome.get() { last = max(last, event.seq) }
        }
        state.withLock { $0.lastSeq = max($0.lastSeq, last) }
    }

    private func readAll() async throws -> [Event] {
        var events: [Event] = []
        var after: Int64 = 0
        while true {
            let page = try await context.store.events(lease.sessionID, after: after, limit: 1000)
            events += page
            guard let last = page.last, page.count == 1000 else { break }
            after = last.seq
        }
        if let last = events.last?.seq { state.withLock { $0.lastSeq = max($0.lastSeq, last) } }
        return events
    }

    /// Tool uses with no result yet, in log order.
    static func pendingToolUses(_ events: [Event]) -> [PendingToolUse] {
        var results = Set<String>()
        for event in events where event.type == .agentToolResult || event.type == .userCustomToolResult {
            if let id = (try? JSONValue.parse(event.payload))?["tool_use_id"]?.stringValue { results.insert(id) }
        }
        return events.filter { $0.type == .agentToolUse }.compactMap { event in
            guard let payload = try? JSONValue.parse(event.payload), let id = payload["id"]?.stringValue, !results.contains(id) else { return nil }
            return PendingToolUse(id: id, name: payload["name"]?.stringValue ?? "", input: payload["input"] ?? [:])
        }
    }

    /// An interrupt newer than both the last idle status and the last user message.
    static func hasUnhandledInterrupt(_ events: [Event]) -> Bool {
        let lastIdle = events.last(where: { $0.type == .sessionStatusIdle })?.seq ?? 0
        let lastMessage = events.last(where: { $0.type == .userMessage })?.seq ?? 0
        return events.contains { $0.type == .userInterrupt && $0.seq > max(lastIdle, lastMessage) }
    }

    /// Input and output tokens of every model call in the log.
    static func tokensSpent(_ events: [Event]) -> Int {
        events.filter { $0.type == .spanModelRequestEnd }.reduce(0) { total, event in
            let usage = (try? JSONValue.parse(event.payload))?["usage"]
            return total + (usage?["input_tokens"]?.intValue ?? 0) + (usage?["output_tokens"]?.intValue ?? 0)
        }
    }

    static func lastCompacted(_ events: [Event]) -> [String] {
        guard let event = events.last(where: { $0.type == .agentContextCompacted }),
              case .array(let ids)? = (try? JSONValue.parse(event.payload))?["elided_tool_results"] else { return [] }
        return ids.compactMap(\.stringValue)
    }
}
