import DroverCore
import DroverIO
import DroverModel
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// How a harness runs.
public struct HarnessOptions: Sendable {
    public var maxSessions = 64
    /// Lease TTL in seconds; heartbeats go out at a third of it.
    public var leaseTTL: Double = 30
    /// How often to look for work when no notification comes.
    public var pollInterval: Double = 1
    /// Seconds in-flight steps get to reach a boundary after SIGTERM.
    public var grace: Double = 10
    /// Provision the sandbox before the first model call (only to compare in the benchmark).
    public var eagerSandbox = false
    /// Seconds between write-backs of a turn's memory changes while it runs (and at its end).
    public var memorySyncInterval: Double = 30
    public var maxTurns = 50
    /// Claims in a row without a clean release after which a session is closed as
    /// `retries_exhausted` instead of being run again (a crash-loop guard).
    public var maxAttempts = 5
    public var contextBudgetTokens = 150_000
    public var poolToken = ""
    /// Opens the secrets of sessions' repositories and vaults (`VaultKey`); nil: sessions that
    /// have some fail with `vault_key_missing`.
    public var vaultKey: String?
    /// How often to look for harnesses that died holding leases (their liveness lock is free).
    public var rescueInterval: Double = 0.25
    /// Pooled database connections (one more is the listener): a fixed budget whatever
    /// `maxSessions` is, since every session's writes share commits through group commit.
    public var databaseConnections = 3
    /// Which internal addresses `web_fetch` and MCP servers may reach (`--allow-internal`): none
    /// by default, whatever an environment names.
    public var addressRule = AddressRule(ownAddresses: OutboundResolver.ownAddresses())
    /// The search backend `web_search` asks (`--search-url`, a SearXNG-style JSON endpoint); nil:
    /// web_search is not offered.
    public var searchURL: String?
    /// Each group commit that appends events is followed by one notification to `drover api`'s
    /// streams (off with `--no-notify-streams`): harness-written events reach streams in under a
    /// millisecond instead of at the API's 20 ms poll (docs/benchmarks.md).
    public var notifyStreams = true
    /// Where to serve /metrics, /healthz and /readyz (off when nil).
    public var metricsListen: (host: String, port: UInt16)?
    public init() {}
}

/// `drover harness`: claims runnable sessions and runs them, many at once, until SIGTERM.
/// Stateless: everything it knows comes from the log, and every write is fenced by its leases.
public final class Harness: Service {
    public let id: HarnessID
    let options: HarnessOptions
    let pool: ConnectionPool
    let context: HarnessContext
    let log: Log

    private struct State {
        var runners = RunnerTable<SessionRunner>()
        var draining = false
        var ready = false
        /// After losing its liveness connection, the harness claims nothing until then (seconds on
        /// `now`), so that healthy harnesses take its sessions first.
        var claimPausedUntil: Double = 0
        /// Claims stop while this harness's sessions wait for sandboxes (`admitting`).
        var admissionPaused = false
    }

    /// A provision unanswered for longer than this is waiting for room (`SandboxRouter.sandboxWaits`).
    static let admissionThreshold: Duration = .milliseconds(250)
    private let state = Mutex(State())
    private let clock = ContinuousClock()
    private let origin = ContinuousClock.now

    public init(databaseURL: String, provider: any ModelProvider, options: HarnessOptions) {
        let id = HarnessID.fresh()
        let log = Log(component: "harness", context: [("harness", .string(id.rawValue))])
        // A step that cannot get a connection within half the TTL gives up rather than sit on a
        // lease it cannot serve; the lease then expires and another harness resumes the session.
        let pool = ConnectionPool(conninfo: databaseURL, maxConnections: max(1, options.databaseConnections),
                                  connectTimeout: max(1, min(30, options.leaseTTL / 2)))
        self.id = id
        self.options = options
        self.pool = pool
        self.log = log
        context = HarnessContext(
            store: SessionStore(pool: pool), queue: LeaseQueue(pool: pool), provider: provider,
            router: SandboxRouter(registry: PoolRegistry(pool: pool), token: options.poolToken, log: log),
            agents: AgentCache(defaults: options), options: options, log: log, metrics: HarnessMetrics(),
            committer: GroupCommitter(pool: pool, notifyStreams: options.notifyStreams), previews: PreviewPublisher(pool: pool))
    }

    private var activeSessions: Int { state.withLock { $0.runners.count } }

    /// Ready for work: registered, claiming, not draining.
    private var isReady: Bool { state.withLock { $0.ready && !$0.draining } }

    /// Seconds on a monotonic clock, for lease state machines.
    private var now: Double { (ContinuousClock.now - origin) / .seconds(1) }

    /// Runs until SIGTERM/SIGINT, then drains; returns the exit status.
    /// Runs as a group of one that owns SIGTERM and SIGINT (the command's lifecycle).
    public func run() async throws -> Int32 {
        try await ServiceGroup([self], deadline: options.grace + 30, log: Log(component: "harness")).run()
    }

    public var name: String { "harness" }

    /// Serves until `stop` fires, then drains (see `ServiceGroup`).
    public func run(until stop: ShutdownTrigger) async throws -> Int32 {
        let lockKey = try await register()
        context.metrics.registry.gauge("drover_sandbox_waits", "Provisions this harness sent that wait for a sandbox (unanswered for longer than the admission threshold).") { [self] in
            Double(context.router.sandboxWaits(olderThan: Self.admissionThreshold))
        }
        context.metrics.registry.gauge("drover_claims_paused", "1 while this harness claims no sessions because its sessions wait for sandboxes.") { [self] in
            state.withLock { $0.admissionPaused } ? 1 : 0
        }
        context.metrics.registry.gauge("drover_sessions_active", "Sessions this harness is running now.") { [self] in
            Double(activeSessions)
        }
        let ops = try options.metricsListen.map { listen in
            try OpsEndpoint(host: listen.host, port: listen.port, metrics: context.metrics.registry) { [self] in isReady }
        }
        if let ops { log.info("metrics listening", ("address", .string(ops.address))) }
        // One listener connection for every channel: runnable sessions wake the claimer, user
        // events reach the runner of their session, watched sessions get previews.
        // It also holds this process's liveness lock: when the process or the connection dies,
        // Postgres frees the lock and other harnesses take the leases over at once (rescue).
        let listener = try PostgresListener(
            conninfo: pool.conninfo, channels: [LeaseQueue.runnableChannel, LeaseQueue.userEventChannel, LeaseQueue.previewWatchChannel],
            onConnect: ["SET application_name = 'drover harness'", "SELECT pg_advisory_lock(\(lockKey))"])
        let claimer = Claimer(queue: context.queue, owner: id, ttl: options.leaseTTL, pollInterval: options.pollInterval,
                              sharedListener: listener, owns: false)
        log.info("started", ("max_sessions", .number(Double(options.maxSessions))), ("lease_ttl_s", .number(options.leaseTTL)),
                 ("eager_sandbox", .bool(options.eagerSandbox)))

        state.withLock { $0.ready = true }
        let claiming = Task { await claimLoop(claimer, listener: listener) }
        let rescuing = Task { await rescueLoop() }
        let ticking = Task { await tickLoop() }
        let registry = Task { await registryLoop() }
        let interrupts = Task {
            for await notification in listener.notifications {
                if notification.isDisconnect {
                    await livenessLost()
                } else if notification.channel == LeaseQueue.previewWatchChannel {
                    context.previews.watch(notification.payload)
                } else if notification.channel == LeaseQueue.userEventChannel {
                    let runner = state.withLock { $0.runners[SessionID(notification.payload)] }
                    if let runner { Task { await runner.userEventArrived() } }
                }
            }
        }

        let signal = await stop.wait()
        log.info("draining", ("signal", .number(Double(signal))), ("sessions", .number(Double(state.withLock { $0.runners.count }))))
        state.withLock { $0.draining = true }
        claiming.cancel()
        claimer.stop()
        let runners = state.withLock { $0.runners.runners }
        runners.forEach { $0.requestDrain() }
        let deadline = ContinuousClock.now + .seconds(options.grace)
        while state.withLock({ !$0.runners.isEmpty }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Past the grace: stop what is left mid-step and hand it off.
        for runner in state.withLock({ $0.runners.runners }) { runner.stop(.handOff) }
        let handOffDeadline = ContinuousClock.now + .seconds(5)
        while state.withLock({ !$0.runners.isEmpty }) && ContinuousClock.now < handOffDeadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        _ = await claiming.value
        rescuing.cancel()
        ticking.cancel()
        registry.cancel()
        interrupts.cancel()
        listener.stop()
        _ = try? await pool.query("SELECT drover.harness_stopped($1)", [id.rawValue])
        context.router.close()
        pool.close()
        ops?.stop()
        log.info("stopped")
        return 0
    }

    /// Registers this process; returns the key of the liveness lock it must hold.
    private func register() async throws -> Int64 {
        let host = ProcessInfo.processInfo.hostName
        return try await pool.query("SELECT drover.register_harness($1, $2, $3)", [id.rawValue, host, Int(getpid())])[0].decode(0)
    }

    // MARK: - Claiming

    private func claimLoop(_ claimer: Claimer, listener: PostgresListener) async {
        var backoff = Backoff()
        while !Task.isCancelled {
            let free = options.maxSessions - state.withLock { $0.runners.count }
            let admitting = await admitting()
            if free <= 0 || !admitting {
                try? await Task.sleep(for: .milliseconds(5))
                continue
            }
            do {
                // No claims without the liveness lock (a lease held without it would be cut at
                // once), nor during the pause after losing it.
                let (leases, sentAt) = try await claimer.nextWithSendTime(max: min(free, 32)) { [self] in
                    listener.isConnected && state.withLock { $0.claimPausedUntil } <= now
                }
                backoff.reset()
                for lease in leases { start(lease, claimSentAt: (sentAt - origin) / .seconds(1)) }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                log.warning("claim failed", ("error", .string(String(reflecting: error))))
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
    }

    /// Whether this harness may claim: not while any of its sessions waits for a sandbox. Every
    /// sandbox it can reach is running a call then, and a session claimed now would wait too,
    /// held here where no other harness (one near a pool with room) can take it: the surplus
    /// stays in Postgres's queue, first come first served, where `drover top` counts it. A change
    /// is logged and recorded on the harness's row (`drover harnesses`, `drover top`).
    private func admitting() async -> Bool {
        let waits = context.router.sandboxWaits(olderThan: Self.admissionThreshold)
        let paused = waits > 0
        let changed = state.withLock { state -> Bool in
            defer { state.admissionPaused = paused }
            return state.admissionPaused != paused
        }
        if changed {
            if paused {
                log.info("claims paused: sessions wait for sandboxes", ("sandbox_waits", .number(Double(waits))))
            } else {
                log.info("claims resumed")
            }
            _ = try? await pool.query("SELECT drover.harness_heartbeat($1, $2)", [id.rawValue, paused])
        }
        return !paused
    }

    private func start(_ lease: Lease, claimSentAt: Double) {
        let runner = SessionRunner(lease: lease, claimSentAt: claimSentAt, origin: origin, context: context)
        let (accepted, replaced) = state.withLock { state -> (Bool, SessionRunner?) in
            guard !state.draining else { return (false, nil) }
            return (true, state.runners.insert(runner, session: lease.sessionID, epoch: lease.epoch))
        }
        guard accepted else {
            Task { _ = try? await context.queue.release(lease, to: .queued, handledThrough: lease.lastSeq) }
            return
        }
        // This harness won its own session back after its older lease expired: that runner's
        // writes are fenced already; stop it now.
        replaced?.stop(.leaseLost)
        runner.log.info("claimed")
        context.metrics.claimed.inc()
        Task {
            await runner.run()
            state.withLock { $0.runners.remove(session: lease.sessionID, epoch: lease.epoch) }
        }
    }

    // MARK: - Leases

    /// Ticks every lease's state machine: heartbeats when due, stops work when a lease is lost.
    private func tickLoop() async {
        let interval = min(0.25, options.leaseTTL / 12)
        while !Task.isCancelled {
            for runner in state.withLock({ $0.runners.runners }) {
                switch runner.tick(now: now) {
                case .sendHeartbeat:
                    Task { await heartbeat(runner) }
                case .stopWork:
                    runner.log.warning("lease expired locally: stopping")
                    runner.stop(.leaseLost)
                case .none, .sendRelease:
                    break
                }
            }
            try? await Task.sleep(for: .seconds(interval))
        }
    }

    private func heartbeat(_ runner: SessionRunner) async {
        do {
            _ = try await context.committer.heartbeat(runner.lease, ttl: options.leaseTTL)
            runner.heartbeatSucceeded()
            context.metrics.heartbeats.inc(["outcome": "ok"])
        } catch {
            let lost = (error as? DroverError)?.code == .leaseLost
            // A heartbeat that was on its way when its lease's release committed is refused; the
            // lease ended cleanly, so that is no failure.
            guard runner.isHolding || !lost else { return }
            context.metrics.heartbeats.inc(["outcome": "failed"])
            if runner.heartbeatFailed(leaseLost: lost, now: now) == .stopWork {
                runner.log.warning("lease lost on heartbeat: stopping")
                runner.stop(.leaseLost)
            }
        }
    }

    /// The listener's connection, and with it the liveness lock, was lost: another harness may
    /// already have taken this one's sessions over. Stop their work (nothing more is written
    /// under those leases) and give the leases up, so they are claimed now, not after the TTL.
    private func livenessLost() async {
        let pause = max(2, options.rescueInterval * 8)
        let runners = state.withLock { state -> [SessionRunner] in
            state.claimPausedUntil = now + pause
            return state.runners.runners
        }
        guard !runners.isEmpty else { return }
        log.warning("liveness connection lost: giving up every lease", ("sessions", .number(Double(runners.count))))
        runners.forEach { $0.stop(.leaseLost) }
        // The database may be restarting: keep trying until the leases would have expired anyway.
        let giveUp = now + options.leaseTTL
        var backoff = Backoff()
        while now < giveUp {
            if (try? await pool.query("SELECT drover.relinquish_leases($1)", [id.rawValue])) != nil { return }
            try? await Task.sleep(for: .seconds(min(backoff.next(), 1)))
        }
    }

    /// Cuts short the leases of harnesses found dead by their liveness lock, so that their
    /// sessions are claimed now rather than after the TTL (this harness's claimer is woken by the
    /// NOTIFY that follows, like every other's).
    private func rescueLoop() async {
        while !Task.isCancelled {
            if let cut: Int = try? await pool.query("SELECT drover.rescue_orphans()")[0].decode(0), cut > 0 {
                context.metrics.rescued.inc(by: Double(cut))
                log.info("took over the leases of a harness that is gone", ("sessions", .number(Double(cut))))
            }
            try? await Task.sleep(for: .seconds(options.rescueInterval))
        }
    }

    private func registryLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(5))
            _ = try? await pool.query("SELECT drover.harness_heartbeat($1, $2)", [id.rawValue, state.withLock { $0.admissionPaused }])
        }
    }
}
