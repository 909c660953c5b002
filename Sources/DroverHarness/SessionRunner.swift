import DroverCore
import DroverMCP
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
    /// Previews of model calls for the sessions an API stream watches (`event_deltas`).
    var previews: PreviewPublisher
}

/// Runs one session under one lease: `wake(sessionId)`.
///
/// The log is the only state. The runner reads it (only what is new at each step), asks the pure
/// `TurnPlanner` what to do next, and performs that step: run logged tool calls (in parallel),
/// call the model with the context view, or end the turn with `session.status_idle` and release
/// the lease. A successor after a crash plans from exactly what was written: a tool call logged
/// without a result is re-sent with the same call id, a model call cut off is made again, a turn
/// that was already answered is only closed.
///
/// Every write goes through the lease's `LeaseStateMachine`: none is sent once the local deadline
/// has passed, and a `lease_lost` answer stops the work at once.
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
        /// The log as read so far.
        var sessionLog = SessionLog()
        var stopReason: StopReason?
        var drainRequested = false
        var work: Task<Void, Never>?
        /// The memory stores attached to the session, as read at the start of this wake.
        var stores: [SessionStore.AttachedStore] = []
        /// The session whose sandbox and resources this one uses (a thread's parent, else
        /// itself), once the wake has read it.
        var home: SessionID?
    }

    private let state: Mutex<State>
    /// Rung by every user event of this session: a self-hosted worker's result ends a wait.
    private let userEvents = Doorbell()
    private let origin: ContinuousClock.Instant

    init(lease: Lease, claimSentAt: Double, origin: ContinuousClock.Instant, context: HarnessContext) {
        self.lease = lease
        self.context = context
        self.origin = origin
        self.log = context.log.with(("session", .string(lease.sessionID.rawValue)), ("epoch", .number(Double(lease.epoch))))
        state = Mutex(State(machine: LeaseStateMachine(claimSentAt: claimSentAt, ttl: context.options.leaseTTL)))
    }

    /// Seconds on the harness's monotonic clock (the lease state machine's time).
    private var now: Double { (ContinuousClock.now - origin) / .seconds(1) }

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

    /// Whether the lease is still held (not released, not lost).
    var isHolding: Bool {
        state.withLock { if case .holding = $0.machine.state { true } else { false } }
    }

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
        userEvents.ring()
        let after = state.withLock { $0.sessionLog.lastSeq }
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
            // An interrupt or a hand-off cancelled the step; the closing must not inherit that:
            // it reads the sandbox's outputs and memory files and writes them back before the
            // release (a cancelled task's pool requests fail at once).
            await Task { await self.conclude(after: error) }.value
        }
        if let home = state.withLock({ $0.home }) { context.router.forget(home) }
    }

    private func loop() async throws {
        var (agentID, agentVersion, environmentID) = (lease.agentID, lease.agentVersion, lease.environmentID)
        if agentID == nil || agentVersion == nil || environmentID == nil {
            let session = try await context.store.session(lease.sessionID)
            (agentID, agentVersion, environmentID) = (session.runAgent?.id ?? session.agentID, session.runAgent?.version ?? session.agentVersion,
                                                      session.environmentID)
        }
        var agent = try await context.agents.agent(id: agentID!, version: agentVersion!, store: context.store)
        let environment = try await context.agents.environment(id: environmentID!, store: context.store)
        let environmentConfig = try? JSONValue.parse(environment.configJSON)
        // A self-hosted environment's sandbox tools run on its workers; nothing is provisioned here.
        let worker = environment.selfHosted
            ? WorkerRouting(tools: BuiltinTools.names, deadline: Double(environmentConfig?["tool_deadline_s"]?.intValue ?? 600)) : nil
        // A thread works in its session's sandbox, with its session's files, repositories and
        // memory stores.
        let (store, session, key) = (context.store, lease.sessionID, context.options.vaultKey)
        let home = try await store.home(of: session)
        context.router.use(home)
        state.withLock { $0.home = home }
        // Repositories are read (and their tokens opened) only when a sandbox is made.
        var spec = SandboxSpec(resources: environmentConfig?["resources"], networking: environmentConfig?["networking"]) {
            try await store.repositories(home, key: key)
        }
        if home != session { spec.home = home }
        spec.packages = (try? PackageSet(json: environmentConfig?["packages"])) ?? PackageSet()
        spec.files = { try await store.sessionFiles(home) }
        spec.fileBytes = { try await store.sessionFileBytes($0, session: home) }
        // Memory stores (mounted with the sandbox, described in the system prompt) and the budget,
        // read beside the wake's first read of the log: a query of its own in line would add its
        // round trip to every wake's first model request.
        let settings = Task { try await store.wakeSettings(session) }
        var settingsRead = false
        var lastMemorySync = ContinuousClock.now
        spec.memories = { try await store.memories(ofStore: $0) }
        spec.writeBack = { [weak self] in await self?.collectMemories() }
        // web_fetch and web_search are the harness's (the sandbox has no network), offered where the
        // policy allows something (web_search where the operator named a search backend).
        let policy = NetworkPolicy(environmentConfig: environmentConfig)
        var harnessTools: [any HarnessTool] = []
        if policy.kind != .none {
            harnessTools.append(WebFetch(policy: policy, rule: context.options.addressRule))
            if let backend = context.options.searchURL { harnessTools.append(WebSearch(backend: backend, rule: context.options.addressRule)) }
        }
        for tool in harnessTools where !agent.tools.contains(where: { $0.name == tool.name }) { agent.tools.append(tool.definition) }
        var catalog = ToolCatalog(harness: Set(harnessTools.map(\.name)))
        if let advisor = Advisor.tool(model: agent.advisorModel, session: session) {
            agent.tools.append(advisor)
            catalog.advisor = true
        }
        if let threads = SessionThreads.tool(roster: agent.threadRoster, inline: agent.inlineThreads, session: session) {
            agent.tools += [threads, SessionThreads.messageTool(roster: agent.threadRoster)]
            catalog.threads = true
        }
        if let workflows = agent.workflows, let tools = WorkflowPlan.tools(roster: workflows.roster, inline: workflows.inline, session: session) {
            agent.tools += tools
            catalog.workflows = true
        }
        let mcp = try await connectMCP(agent, policy: policy)
        agent.tools += mcp.definitions
        catalog.mcp = Set(mcp.definitions.map(\.name))
        var planner = TurnPlanner(
            epoch: lease.epoch, maxTurns: agent.maxTurns, tokenBudget: agent.tokenBudget, contextBudgetTokens: agent.contextBudgetTokens,
            attempt: lease.attempt, maxAttempts: context.options.maxAttempts, worker: worker)
        planner.tools = catalog
        if lease.attempt > 1 { log.warning("claimed again after its holder stopped", ("attempt", .number(Double(lease.attempt)))) }
        // The claim itself appended session.status_running under this lease.
        if context.options.eagerSandbox && worker == nil {
            try await context.router.ensureSandbox(for: lease, spec: spec)
        }
        while true {
            try checkDrain()
            let sessionLog = try await refresh()
            if !settingsRead {
                let read = try await settings.value
                // A self-hosted worker's sandbox is its own: no stores are mounted there.
                if worker == nil {
                    spec.stores = read.stores
                    state.withLock { [stores = spec.stores] in $0.stores = stores }
                    agent.systemPrompt += Self.memorySection(spec.stores)
                }
                planner.spendLimit = read.budget.map { SpendLimit(maxCents: $0.maxCents, price: $0.price) }
                settingsRead = true
            }
            switch planner.next(sessionLog) {
            case .runTools(let calls):
                try await runTools(calls, spec: spec, harnessTools: harnessTools, mcp: mcp, worker: worker, agent: agent)
                // A long turn's memory changes are written back on the way, not only at its end.
                if !spec.stores.isEmpty, ContinuousClock.now - lastMemorySync >= .seconds(context.options.memorySyncInterval) {
                    await collectMemories()
                    lastMemorySync = .now
                }
            case .awaitWorker(let calls, let until):
                try await awaitWorker(calls, until: until)
            case .callModel(let view, let compacted):
                try await callModel(agent: agent, mcp: mcp, view: view, compacted: compacted, sessionLog: sessionLog, worker: worker)
            case .advanceWorkflow(let step):
                try await advanceWorkflow(step)
            case .evaluateOutcome(let evaluation):
                try await evaluate(evaluation, agent: agent)
            case .awaitThreads(let threads):
                // The lease is held and heartbeated meanwhile; a thread's reply rings the bell.
                if state.withLock({ $0.sessionLog.last?.type }) != .agentThreadMessageReceived {
                    log.info("waiting for threads", ("threads", .array(threads.map(JSONValue.string))))
                }
                _ = await userEvents.wait(timeout: 5)
                try Task.checkCancellation()
            case .finish(let reason, let unanswered, let handledThrough):
                // A budgeted session's turn ends with its usage and spend so far (`session.usage`).
                let usage = planner.spendLimit.map { [$0.usageEvent(sessionLog).logged] } ?? []
                try await finish(reason, unanswered: unanswered, handledThrough: handledThrough, extra: usage)
                return
            }
        }
    }

    /// Connects the agent's MCP servers with the session's vault credentials. A server that cannot
    /// be used is reported as a `session.error` (Managed Agents' `mcp_connection_failed_error` or
    /// `mcp_authentication_failed_error`) and its tools are not offered this wake; the turn goes on.
    private func connectMCP(_ agent: RunnableAgent, policy: NetworkPolicy) async throws -> MCPToolbox {
        guard !agent.mcpServers.isEmpty else { return .empty }
        let access = try await refreshingExpired(
            try await context.store.credentials(lease.sessionID, key: context.options.vaultKey), for: agent.mcpServers)
        // `allow_mcp_servers` opens the agent's own servers by name (only they are connected);
        // their addresses still answer to the operator's rule.
        let servers = policy.allowsMCPServers ? NetworkPolicy(kind: .unrestricted) : policy
        let toolbox = await MCPToolbox.connect(agent.mcpServers, access: access, taken: Set(agent.tools.map(\.name)),
                                             policy: servers, rule: context.options.addressRule, log: log)
        if !toolbox.failures.isEmpty {
            try await write(toolbox.failures.map { server, failure in
                HarnessEvent.sessionError(type: failure.kind.rawValue, message: failure.message, details: ["mcp_server_name": .string(server)])
            })
            for (server, failure) in toolbox.failures {
                log.warning("MCP server unavailable", ("mcp_server", .string(server)), ("error", .string(failure.kind.rawValue)))
            }
        }
        return toolbox
    }

    /// The credentials, with each mcp_oauth token an agent's server uses refreshed first if it has
    /// expired or is about to (`OAuthRefresher`), and the new one stored, sealed, for every later
    /// wake: compare-and-set on the credential's version, so when two harnesses refresh at once
    /// the one that lost reads the winner's. A refresh that fails is logged and the old token is
    /// tried (its server's failure then becomes the session's `session.error`).
    private func refreshingExpired(_ access: VaultCredentials, for servers: [MCPServerSpec]) async throws -> VaultCredentials {
        let due = Set(servers.compactMap { access.credential(for: $0.url) }.filter { OAuthRefresher.needsRefresh($0) }.map(\.id))
        guard !due.isEmpty else { return access }
        var access = access
        let refresher = OAuthRefresher(rule: context.options.addressRule)
        var reread = false
        for index in access.credentials.indices where due.contains(access.credentials[index].id) {
            let credential = access.credentials[index]
            guard let refresh = credential.refresh else { continue }
            do {
                let fresh = try await refresher.refresh(refresh)
                guard let key = context.options.vaultKey else { throw SessionStore.noKey }
                if try await context.store.storeRefreshedToken(
                    credential: credential.id, version: credential.version, accessToken: fresh.accessToken, expiresAt: fresh.expiresAt,
                    refreshToken: fresh.refreshToken, key: key) {
                    access.credentials[index].token = fresh.accessToken
                    access.credentials[index].expiresAt = fresh.expiresAt
                    log.info("MCP OAuth token refreshed", ("credential", .string(credential.id)))
                } else {
                    reread = true
                }
            } catch {
                log.warning("MCP OAuth token not refreshed", ("credential", .string(credential.id)), ("error", .string(String(describing: error))))
            }
        }
        // Another harness refreshed first: its token is the one stored.
        return reread ? try await context.store.credentials(lease.sessionID, key: context.options.vaultKey) : access
    }

    /// One model call: its start is logged while the request goes out, its answer (text, thinking,
    /// tool uses) is logged in one batch before any tool runs, so a successor knows what was asked.
    /// `worker`: a self-hosted session's routing; its tool calls' commit wakes the API's streams at
    /// once, since its worker learns of them there.
    private func callModel(
        agent: RunnableAgent, mcp: MCPToolbox, view: ContextView, compacted: [String]?, sessionLog: SessionLog, worker: WorkerRouting?
    ) async throws {
        var before: [HarnessEvent] = []
        if let compacted {
            before.append(.contextCompacted(elided: compacted, tokensBefore: view.estimatedTokens.before, tokensAfter: view.estimatedTokens.after))
        }
        // Turns count model calls over the whole log, across wakes and harnesses.
        let turn = sessionLog.modelCalls + 1
        before.append(.modelRequestStart(model: agent.model, turn: turn))
        // Written out before the request is sent, so that sending it is all that is left to do.
        let logged = before.map(\.logged)
        // The request goes out while its start is being logged: a model call has no side
        // effects, so logging it first would only add a commit to the time to first token.
        let started = ContinuousClock.now
        let firstToken = Mutex<Duration?>(nil)
        let request = ModelRequest(
            model: agent.model, system: ([agent.systemPrompt] + view.system).joined(separator: "\n\n"), messages: view.messages, tools: agent.tools,
            maxTokens: agent.maxTokens, userID: lease.sessionID.rawValue)
        let provider = context.provider
        let preview = context.previews.preview(session: lease.sessionID.rawValue)
        var onDelta: (@Sendable (ModelDelta) -> Void)?
        if let preview { onDelta = { delta in preview.observe(delta) } }
        let observer = ModelStreamObserver(
            onFirstToken: { firstToken.withLock { if $0 == nil { $0 = ContinuousClock.now - started } } }, onDelta: onDelta)
        let call = Task { try await provider.complete(request, observer: observer) }
        let response: ModelResponse
        let startID: String
        do {
            // The start span is the last of `before`; its end names it (`model_request_start_id`).
            startID = try await write(logged).last.map { Event.apiID(uuid: $0.id) } ?? ""
            response = try await withTaskCancellationHandler { try await call.value } onCancel: { call.cancel() }
        } catch {
            call.cancel()
            if let error = error as? ModelError { context.metrics.modelRequests.inc(["outcome": error.code.rawValue]) }
            throw error
        }
        // What the previews have not sent yet goes before the events that conclude them.
        await preview?.finish()
        context.metrics.modelRequests.inc(["outcome": "ok"])
        context.metrics.tokens.inc(["kind": "input"], by: Double(response.usage.inputTokens))
        context.metrics.tokens.inc(["kind": "output"], by: Double(response.usage.outputTokens))
        if let ttft = firstToken.withLock({ $0 }) { context.metrics.timeToFirstToken.observe(ttft / .seconds(1)) }
        var after: [HarnessEvent] = [.modelRequestEnd(.init(
            stopReason: response.stopReason, messageID: response.id, usage: response.usage.json, startID: startID,
            timeToFirstTokenMilliseconds: firstToken.withLock { $0 }.map { ($0 / .milliseconds(1)).rounded() },
            durationMilliseconds: ((ContinuousClock.now - started) / .milliseconds(1)).rounded()))]
        // A previewed block's event carries the id its previews named (by its place in `after`).
        var ids: [Int: UUID] = [:]
        for (index, block) in response.content.enumerated() {
            switch block {
            case .thinking(let text, let signature):
                ids[after.count] = preview?.id(forBlock: index)
                after.append(.thinking(text: text, signature: signature))
            case .text(let text):
                ids[after.count] = preview?.id(forBlock: index)
                after.append(.message(text: text))
            case .toolUse(let id, let name, let input):
                // A custom tool is the client's to run; an always_ask one waits for confirmation.
                let kind: HarnessEvent.ToolUse.Kind =
                    if let server = mcp.server(of: name) { .mcp(server: server) } else if agent.customTools.contains(name) { .custom } else { .sandbox }
                after.append(.toolUse(.init(kind: kind, id: id, name: name, input: input, ask: agent.askTools.contains(name) || mcp.asks(name))))
            case .toolResult:
                continue
            }
        }
        try await write(after.map(\.logged), ids: ids, notify: worker != nil && after.contains { $0.type == .agentToolUse })
    }

    /// Grades the agent's attempt at the outcome: `span.outcome_evaluation_start` (unless a
    /// harness that died logged it already), heartbeats while the grader works, then the end
    /// with the verdict and the grader's usage. The grader is a model request of its own
    /// (`OutcomeGrader`), with the agent's model.
    private func evaluate(_ evaluation: OutcomeEvaluation, agent: RunnableAgent) async throws {
        let (outcome, iteration) = (evaluation.outcomeID, evaluation.iteration)
        var startID = evaluation.startID
        if startID == nil {
            startID = try await write([HarnessEvent.outcomeEvaluation(outcomeID: outcome, iteration: iteration)]).last.map { Event.apiID(uuid: $0.id) }
        }
        log.info("evaluating the outcome", ("outcome", .string(evaluation.outcomeID)), ("iteration", .number(Double(evaluation.iteration))))
        let heartbeat = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(Self.evaluationHeartbeat))
                try await self.write([HarnessEvent.outcomeEvaluation(outcomeID: outcome, iteration: iteration, ongoing: true)])
            }
        }
        defer { heartbeat.cancel() }
        let response = try await ask(OutcomeGrader.request(evaluation, model: agent.model, maxTokens: agent.maxTokens, session: lease.sessionID.rawValue))
        let verdict = OutcomeGrader.verdict(response, iteration: evaluation.iteration, maxIterations: evaluation.maxIterations)
        try await write([HarnessEvent.outcomeEvaluation(outcomeID: outcome, iteration: iteration, end: .init(
            result: verdict.result, explanation: verdict.explanation, usage: response.usage.json, startID: startID ?? ""))])
        log.info("outcome evaluated", ("outcome", .string(evaluation.outcomeID)), ("result", .string(verdict.result)))
    }

    /// Starts the session thread a `create_thread` call asks for (`drover.spawn_thread`, fenced by
    /// the lease, by the id the call gives it: a resumed call starts nothing twice; it logs
    /// `session.thread_created` and `agent.thread_message_sent` with the thread), then the result.
    private func startThread(_ call: PendingToolUse, roster: [(name: String, id: String, version: Int)], inline: Bool) async throws {
        let name = call.input["agent"]?.stringValue ?? ""
        let defined = inline ? call.input["inline"] : nil
        let agent: (name: String, id: String, version: Int)?
        if let defined, let inlineName = defined["name"]?.stringValue, !inlineName.isEmpty, defined["system"]?.stringValue != nil {
            agent = (inlineName, "", 0)
        } else {
            agent = roster.first { $0.name == name }
        }
        guard let agent, let message = call.input["message"]?.stringValue, !message.isEmpty else {
            let choices = roster.map(\.name).joined(separator: ", ") + (inline ? " or inline {name, system}" : "")
            return try await refuse(call, "create_thread needs an agent (\(choices)) and a non-empty message")
        }
        let thread = SessionThreads.threadID(session: lease.sessionID, callID: call.id)
        let made: Bool
        do {
            made = try await context.store.spawnThread(
                lease, thread: thread, agent: agent, message: message, inlineSystem: agent.id.isEmpty ? defined?["system"]?.stringValue : nil)
        } catch let error as DroverError where error.code == .invalidArgument {
            // The session's thread limit: the model reads why.
            return try await refuse(call, error.message)
        }
        log.info("thread started", ("thread", .string(thread)), ("agent", .string(agent.name)), ("new", .bool(made)))
        try Task.checkCancellation()
        try await write([SessionThreads.started(thread: thread, agent: agent.name, callID: call.id)])
    }

    /// Starts the workflow run a `start_workflow_run` call asks for: its plan checked
    /// (`WorkflowPlan`) and logged with the call's result in one write (`workflow_run.created`);
    /// the planner takes its steps from there. A refused plan, or a session with its runs open
    /// already, gets `workflow_run.error` (no run) and an error result.
    private func startWorkflowRun(_ call: PendingToolUse, roster: [(name: String, id: String, version: Int)], inline: Bool) async throws {
        let workflows = state.withLock { $0.sessionLog.workflows }
        func refused(_ type: String, _ message: String) async throws {
            try await write([HarnessEvent.workflowRefused(type: type, message: message),
                             .toolResult(callID: call.id, content: "\(type): \(message)", isError: true)])
        }
        guard workflows.openRuns.count < WorkflowPlan.maxOpenRuns else {
            return try await refused("max_workflow_runs_error", "This session has \(WorkflowPlan.maxOpenRuns) workflow runs open: wait for one to end, or stop one.")
        }
        let plan: WorkflowPlan
        do {
            plan = try WorkflowPlan.parse(call.input, runID: WorkflowPlan.runID(session: lease.sessionID, callID: call.id), roster: roster,
                                          inline: inline, ordinal: workflows.order.count + 1)
        } catch {
            return try await refused("program_error", "The plan was refused: \(error.message)")
        }
        try Task.checkCancellation()
        try await write([
            HarnessEvent.workflow(.init(type: .workflowRunCreated, payload: plan.createdPayload)),
            .toolResult(callID: call.id, content: "Started workflow run \(plan.runID) (\(plan.name)), \(plan.phases.count) phase(s). "
                + "You receive its threads' replies when it ends.", isError: false),
        ])
        log.info("workflow run created", ("workflow_run", .string(plan.runID)), ("phases", .number(Double(plan.phases.count))))
    }

    /// Stops a workflow run (`stop_workflow_run`): its working threads are interrupted, then its
    /// end (`stopped`) and the call's result are logged in one write.
    private func stopWorkflowRun(_ call: PendingToolUse) async throws {
        let workflows = state.withLock { $0.sessionLog.workflows }
        let runID = workflows.run(named: call.input) ?? ""
        guard case .end(_, let working, let events)? = workflows.ending(runID, result: "stopped", error: nil) else {
            return try await refuse(call, workflows.runs[runID] == nil ? "No workflow run \(runID) in this session." : "Workflow run \(runID) has ended already.")
        }
        _ = try await context.store.interruptThreads(lease, threads: working)
        try Task.checkCancellation()
        try await write(events.map(HarnessEvent.workflow) + [.toolResult(callID: call.id, content: "Stopped workflow run \(runID).", isError: false)])
        log.info("workflow run stopped", ("workflow_run", .string(runID)), ("interrupted", .number(Double(working.count))))
    }

    /// Takes a workflow run's next step (`WorkflowProgress.next`). A thread the session cannot
    /// start (its thread limit) ends the run with the error (`thread_limit_error`).
    private func advanceWorkflow(_ step: WorkflowStep) async throws {
        switch step {
        case .write(let events):
            try await write(events.map(HarnessEvent.workflow))
        case .spawn(let run, let threads):
            for start in threads {
                do {
                    _ = try await context.store.spawnThread(
                        lease, thread: start.thread, agent: (start.agent, start.agentID, start.agentVersion), message: start.message,
                        inlineSystem: start.inlineSystem, workflowRun: run)
                } catch let error as DroverError where error.code == .invalidArgument {
                    let type = error.message.hasPrefix("thread_limit") ? "thread_limit_error" : "unknown_error"
                    log.warning("workflow thread not started", ("workflow_run", .string(run)), ("error", .string(error.message)))
                    // The threads started so far are in the log: the ending interrupts them.
                    let ending = try await refresh().workflows.ending(run, result: "error", error: ["type": .string(type), "message": .string(error.message)])
                    if let ending { try await advanceWorkflow(ending) }
                    return
                }
            }
            log.info("workflow threads started", ("workflow_run", .string(run)), ("threads", .number(Double(threads.count))))
        case .end(let run, let working, let events):
            _ = try await context.store.interruptThreads(lease, threads: working)
            try await write(events.map(HarnessEvent.workflow))
            log.info("workflow run ended", ("workflow_run", .string(run)), ("result", events.last?.payload["result"]?["type"] ?? .null))
        }
    }

    /// Asks the advisor (`Advisor`); the answer is the call's result, which logs the advisor's
    /// model, usage and time (`drover_advisor`; model spans would read as the agent's own turns).
    private func consultAdvisor(_ call: PendingToolUse, model: String, maxTokens: Int) async throws {
        let question = call.input["question"]?.stringValue ?? ""
        let started = ContinuousClock.now
        let response = try await ask(Advisor.request(question: question, model: model, maxTokens: maxTokens, session: lease.sessionID.rawValue))
        try await write([HarnessEvent.toolResult(callID: call.id, content: Advisor.answer(response), isError: false, details: [
            "drover_advisor": ["model": .string(model), "model_usage": response.usage.json,
                               "duration_ms": .number(((ContinuousClock.now - started) / .milliseconds(1)).rounded())],
        ])])
    }

    /// Sends a thread another message (`drover.message_thread`, fenced, once per call), then the result.
    private func messageThread(_ call: PendingToolUse) async throws {
        let threads = state.withLock { $0.sessionLog.threads }
        let message = call.input["message"]?.stringValue ?? ""
        guard let thread = SessionThreads.addressee(call.input, threads: threads), !message.isEmpty else {
            return try await refuse(call, "message_thread needs a message and a thread: thread_id, or agent with a thread started")
        }
        do {
            _ = try await context.store.messageThread(lease, thread: thread, call: call.id, message: message)
        } catch let error as DroverError where error.code == .invalidArgument {
            return try await refuse(call, error.message)
        }
        try Task.checkCancellation()
        try await write([HarnessEvent.toolResult(callID: call.id, content: "Sent to thread \(thread). Its reply arrives as a message from the thread.",
                                                 isError: false)])
    }

    /// A model request the harness makes for the agent (a grader, the advisor), cancelled with
    /// the step.
    private func ask(_ request: ModelRequest) async throws -> ModelResponse {
        let provider = context.provider
        let call = Task { try await provider.complete(request, onFirstToken: {}) }
        let response = try await withTaskCancellationHandler { try await call.value } onCancel: { call.cancel() }
        context.metrics.modelRequests.inc(["outcome": "ok"])
        return response
    }

    /// Answers a harness-run call with an error result the model reads.
    private func refuse(_ call: PendingToolUse, _ why: String) async throws {
        try await write([HarnessEvent.toolResult(callID: call.id, content: why, isError: true)])
    }

    /// Seconds between `span.outcome_evaluation_ongoing` heartbeats while a grader works.
    static let evaluationHeartbeat: Double = 10

    /// Runs tool calls in parallel and logs each result, each by the route the planner chose.
    private func runTools(_ calls: [PendingToolUse], spec: SandboxSpec, harnessTools: [any HarnessTool], mcp: MCPToolbox, worker: WorkerRouting?,
                          agent: RunnableAgent) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for call in calls {
                switch call.status {
                case .workerDeadlinePassed:
                    let seconds = Int(worker?.deadline ?? 0)
                    context.metrics.toolCalls.inc(["tool": call.name, "outcome": "worker_deadline"])
                    group.addTask {
                        try await self.write([HarnessEvent.toolResult(
                            callID: call.id, content: "No worker of this self-hosted environment answered within \(seconds) s: the call did not run.",
                            isError: true, details: ["outcome": "worker_deadline"])])
                    }
                    continue
                case .denied(let message):
                    // Denied by the user: its result says so; nothing runs.
                    let text = "The user denied this tool call: \(message)"
                    let result: HarnessEvent = call.route == .mcp
                        ? .mcpToolResult(eventID: call.eventID, content: [["type": "text", "text": .string(text)]], isError: true, details: ["outcome": "denied"])
                        : .toolResult(callID: call.id, content: text, isError: true, details: ["outcome": "denied"])
                    group.addTask { try await self.write([result]) }
                    continue
                default:
                    break
                }
                switch call.route {
                case .harness:
                    guard let tool = harnessTools.first(where: { $0.name == call.name }) else { continue }
                    group.addTask { try await self.runHarnessTool(call, tool) }
                case .mcp:
                    group.addTask { try await self.runMCPTool(call, mcp) }
                case .startThread:
                    group.addTask { try await self.startThread(call, roster: agent.threadRoster, inline: agent.inlineThreads) }
                case .messageThread:
                    group.addTask { try await self.messageThread(call) }
                case .startWorkflow:
                    guard let workflows = agent.workflows else { continue }
                    group.addTask { try await self.startWorkflowRun(call, roster: workflows.roster, inline: workflows.inline) }
                case .stopWorkflow:
                    group.addTask { try await self.stopWorkflowRun(call) }
                case .advisor:
                    guard let model = agent.advisorModel else { continue }
                    group.addTask { try await self.consultAdvisor(call, model: model, maxTokens: agent.maxTokens) }
                case .sandbox:
                    group.addTask { try await self.runInSandbox(call, spec: spec) }
                }
            }
            try await group.waitForAll()
        }
    }

    /// A tool the harness runs itself (`web_fetch`, `web_search`).
    private func runHarnessTool(_ call: PendingToolUse, _ tool: any HarnessTool) async throws {
        let (content, isError) = await tool.run(call.input)
        try Task.checkCancellation()
        try await write([HarnessEvent.toolResult(callID: call.id, content: content, isError: isError)])
    }

    /// A tool of one of the agent's MCP servers.
    private func runMCPTool(_ call: PendingToolUse, _ mcp: MCPToolbox) async throws {
        let (content, isError) = await mcp.call(call.name, input: call.input)
        context.metrics.toolCalls.inc(["tool": "mcp", "outcome": isError ? "is_error" : "ok"])
        try Task.checkCancellation()
        try await write([HarnessEvent.mcpToolResult(eventID: call.eventID, content: content, isError: isError)])
    }

    /// A built-in tool in the session's sandbox. Cancelled (interrupt, hand-off, lost lease): the
    /// call's process is killed too, not left running in the sandbox until its timeout.
    private func runInSandbox(_ call: PendingToolUse, spec: SandboxSpec) async throws {
        let (router, lease, metrics) = (context.router, lease, context.metrics)
        let started = ContinuousClock.now
        let outcome = try await withTaskCancellationHandler {
            try await router.execute(lease: lease, callID: call.id, name: call.name, input: call.input, spec: spec, recovering: call.recovering)
        } onCancel: {
            router.cancel(session: spec.home ?? lease.sessionID, callID: call.id)
        }
        metrics.toolCalls.inc(["tool": call.name, "outcome": outcome.isError ? "is_error" : "ok"])
        metrics.toolSeconds.observe((ContinuousClock.now - started) / .seconds(1), ["tool": call.name])
        try Task.checkCancellation()
        try await write([HarnessEvent.toolResult(callID: call.id, content: outcome.content, isError: outcome.isError, details: outcome.details)])
    }

    /// Waits for a self-hosted worker's results: until a user event of this session arrives (the
    /// API notifies it), the first call's deadline, or a few seconds (a notification lost to a
    /// listener's reconnect costs no more), then the planner reads the log again. The lease is
    /// held and heartbeated meanwhile, as during any long tool call.
    private func awaitWorker(_ calls: [PendingToolUse], until deadline: Date) async throws {
        if state.withLock({ $0.sessionLog.last?.type.isToolUse ?? false }) {
            log.info("waiting for a worker", ("calls", .number(Double(calls.count))))
        }
        let seconds = min(max(deadline.timeIntervalSinceNow, 0), 5)
        _ = await userEvents.wait(timeout: seconds + 0.001)
        try Task.checkCancellation()
    }

    // MARK: - Ending

    /// Ends the turn: every tool use gets exactly one result (calls cut off by the ending say so),
    /// then `session.status_idle` and the release, in one transaction: the log never says idle
    /// while the lease is still held, and it costs one commit. The release re-queues the session
    /// if a user event arrived after `handledThrough`, the last seq the decision to end was made on.
    private func finish(_ reason: IdleReason, unanswered: [PendingToolUse], handledThrough: Int64, extra: [(EventType, String)]) async throws {
        var closing = extra
        // An interrupt while a grader works ends that evaluation `interrupted`, and the outcome with it.
        if reason == .interrupted, let outcome = state.withLock({ $0.sessionLog.outcome }), let open = outcome.open {
            closing.insert(HarnessEvent.outcomeEvaluation(outcomeID: outcome.outcomeID, iteration: open.iteration, end: .init(
                result: "interrupted", explanation: "The user interrupted the evaluation.", usage: ModelUsage().json, startID: open.startID)).logged, at: 0)
        }
        let why = reason == .interrupted ? "Interrupted by the user before a result arrived." : "The turn ended (\(reason.name)) before a result arrived."
        for call in unanswered {
            closing.append(HarnessEvent.toolResult(callID: call.id, content: why, isError: true,
                                                   details: ["outcome": .string(reason == .interrupted ? "interrupted" : "unknown")]).logged)
        }
        if reason == .retriesExhausted {
            closing.append(HarnessEvent.sessionError(
                type: "retries_exhausted",
                message: "The session was claimed \(lease.attempt) times in a row without its turn ending: each harness that held it stopped. It was closed rather than tried again.",
                retry: "exhausted").logged)
        }
        closing.append(HarnessEvent.statusIdle(reason).logged)
        await collectOutputs()
        await collectMemories()
        let status = try await release(to: .idle, handledThrough: handledThrough, appending: closing)
        context.metrics.released.inc(["stop_reason": reason.name])
        log.info("session idle", ("stop_reason", .string(reason.name)), ("released_to", .string(status.rawValue)))
    }

    /// Stores what the sandbox's `/mnt/session/outputs` holds, new or changed since this wake last
    /// stored it, as the session's output files (`files.list(scope_id: session)`), before the
    /// lease is given up: only the holder of the lease writes them. A file that cannot be read or stored is logged and skipped; the turn
    /// ends either way.
    private func collectOutputs() async {
        // A thread's outputs are in its session's sandbox: the session's holder stores them.
        guard let home = state.withLock({ $0.home }), home == lease.sessionID else { return }
        do {
            let threads = state.withLock { !$0.sessionLog.threads.isEmpty }
            guard let outputs = try await context.router.outputs(of: home, lookUp: threads) else { return }
            for name in outputs.names {
                let bytes = try await outputs.read(name)
                if try await context.store.storeOutput(lease, name: name, bytes: bytes) {
                    outputs.stored(name)
                    log.info("output file stored", ("name", .string(name)), ("bytes", .number(Double(bytes.count))))
                }
            }
        } catch {
            log.warning("output files not collected", ("error", .string(String(reflecting: error))))
        }
    }

    /// The memory section of the system prompt, from the attached stores (their names and
    /// descriptions as attached, and each attachment's instructions).
    static func memorySection(_ stores: [SessionStore.AttachedStore]) -> String {
        guard !stores.isEmpty else { return "" }
        var text = "\n\n# Memory\n\nThese memory stores are mounted as folders; what you write in a read-write one is kept for later sessions.\n"
        for store in stores {
            text += "\n- \(store.mountPath) (\(store.readOnly ? "read-only" : "read-write")): \(store.name)"
            if !store.description.isEmpty { text += " — \(store.description)" }
            if let instructions = store.instructions, !instructions.isEmpty { text += "\n  \(instructions)" }
        }
        return text
    }

    /// Writes back what the agent changed in its read-write memory stores (as the sandbox's pool
    /// tells it, `MemorySyncPlan`) as new versions whose actor is the session, under the lease
    /// only (`drover.memory_sync`); each one written becomes the pool's new base, so a harness
    /// that takes the session over after this one died writes back exactly what is left. A
    /// memory someone else changed meanwhile is left as they made it (the change is logged and
    /// dropped); nothing here ends the turn.
    private func collectMemories() async {
        do {
            let (stores, home) = state.withLock { ($0.stores, $0.home ?? lease.sessionID) }
            let writable = stores.filter { !$0.readOnly }.map(\.storeID)
            for (store, told) in try await context.router.memoryChanges(of: home, stores: writable) {
                let plan = MemorySyncPlan.plan(changed: told.changed, removed: told.removed)
                for path in plan.skipped {
                    log.warning("memory file not kept: not UTF-8 text or larger than 100 kB", ("store", .string(store)), ("path", .string(path)))
                }
                for change in plan.changes {
                    let (path, content, expected, delete): (String, String?, String?, Bool) = switch change {
                    case .create(let path, let content): (path, content, nil, false)
                    case .update(let path, let content, let sha): (path, content, sha, false)
                    case .delete(let path, let sha): (path, nil, sha, true)
                    }
                    do {
                        guard case .written(let now) = try await context.store.syncMemory(
                            lease, store: store, path: path, content: content, expectedSHA256: expected, delete: delete)
                        else {
                            return  // the lease is gone: nothing more is written
                        }
                        try await context.router.memorySynced(home, store: store, path: path, bytes: content.map { Array($0.utf8) }, sha256: now)
                        log.info("memory written back", ("store", .string(store)), ("path", .string(path)), ("deleted", .bool(delete)))
                    } catch let error as DroverError where error.code == .conflict || error.code == .invalidArgument {
                        log.warning("memory change dropped", ("store", .string(store)), ("path", .string(path)), ("error", .string(error.message)))
                    }
                }
            }
        } catch {
            log.warning("memory not written back", ("error", .string(String(reflecting: error))))
        }
    }

    /// Releases the lease, after appending `events` in the same transaction.
    private func release(to target: SessionStatus, handledThrough: Int64, appending events: [(EventType, String)] = []) async throws -> SessionStatus {
        guard state.withLock({ $0.machine.releaseRequested() }) == .sendRelease else {
            throw DroverError(.leaseLost, "the lease is no longer held")
        }
        let writes = events.map { LeaseWrite.append(lease, $0.0, payload: $0.1) } + [.release(lease, to: target, handledThrough: handledThrough)]
        var status = target
        do {
            for outcome in await context.committer.submitAll(writes) {
                if case .released(let released) = try outcome.get() { status = released }
            }
        } catch let error as DroverError where error.code == .leaseLost {
            state.withLock { $0.machine.releaseCompleted(leaseLost: true) }
            throw error
        } catch {
            state.withLock { $0.machine.releaseFailed() }
            throw error
        }
        state.withLock { $0.machine.releaseCompleted(leaseLost: false) }
        return status
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
                try await finishAfterStop(.interrupted, extra: [])
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
                try await finishAfterStop(.error, extra: [HarnessEvent.sessionError(type: code, message: message).logged])
            }
        } catch {
            log.error("could not close the session", ("error", .string(String(reflecting: error))))
        }
    }

    /// Ends the turn after a step was cut short: reads what is new, then answers every tool use
    /// still without a result.
    private func finishAfterStop(_ reason: IdleReason, extra: [(EventType, String)]) async throws {
        let sessionLog = try await refresh()
        try await finish(reason, unanswered: TurnPlanner.pendingToolUses(sessionLog, epoch: lease.epoch),
                         handledThrough: sessionLog.lastSeq, extra: extra)
    }

    /// Gives the session back, runnable, so another harness resumes it now rather than after the TTL.
    private func handOff() async throws {
        let handled = state.withLock { $0.sessionLog.lastSeq }
        _ = try await release(to: .queued, handledThrough: handled)
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
        case let error as PackagesFailed: return ("unknown_error", error.message)
        default: return ("internal", String(describing: error))
        }
    }

    // MARK: - Log helpers

    /// Appends in order, in one transaction, sharing the commit with other sessions' writes.
    /// Nothing is sent once the lease's local deadline has passed; a `lease_lost` answer stops
    /// the work.
    /// Appends typed events (`HarnessEvent`), as `write` does.
    @discardableResult
    private func write(_ events: [HarnessEvent]) async throws -> [AppendedEvent] {
        try await write(events.map(\.logged))
    }

    @discardableResult
    /// `ids`: the ids chosen for some of the events (by their place in `events`).
    private func write(_ events: [(EventType, String)], ids: [Int: UUID] = [:], notify: Bool = false) async throws -> [AppendedEvent] {
        guard !events.isEmpty else { return [] }
        guard state.withLock({ $0.machine.canWrite(at: now) }) else {
            stop(.leaseLost)
            throw DroverError(.leaseLost, "the lease's local deadline has passed")
        }
        do {
            return try await context.committer.submitAll(events.enumerated().map { .append(lease, $1.0, payload: $1.1, id: ids[$0]) }, notify: notify).compactMap { outcome in
                if case .appended(let event) = try outcome.get() { return event }
                return nil
            }
        } catch let error as DroverError where error.code == .leaseLost {
            if state.withLock({ $0.machine.writeFenced() }) == .stopWork { stop(.leaseLost) }
            throw error
        }
    }

    /// Reads the events after the last one held (never the whole log again) and returns the log.
    private func refresh() async throws -> SessionLog {
        var after = state.withLock { $0.sessionLog.lastSeq }
        var read = 0
        while true {
            let page = try await context.store.events(lease.sessionID, after: after, limit: 1000)
            read += page.count
            state.withLock { $0.sessionLog.append(page) }
            guard let last = page.last, page.count == 1000 else { break }
            after = last.seq
        }
        context.metrics.logEventsRead.inc(by: Double(read))
        return state.withLock { $0.sessionLog }
    }
}
