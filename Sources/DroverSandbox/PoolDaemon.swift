import DroverCore
import DroverIO
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// `drover sandbox-pool`: owns sandboxes and serves the pool protocol until SIGTERM, then drains.
public struct PoolDaemon: Service {
    public struct Config: Sendable {
        public var host = "127.0.0.1"
        public var port: UInt16 = 7420
        public var token: String
        public var warm = 2
        public var capacity = 64
        public var isolation: Isolation.Mode = .bubblewrap
        public var workspaceRoot: String?
        public var maxLineLength = PoolProtocol.defaultMaxLineLength
        /// Seconds a new connection has to authenticate with `hello` before it is closed.
        public var helloDeadline: Double = 10
        /// Connections served at once; more are refused with `too_many_connections`.
        public var maxConnections = 256
        /// Connections still without `hello`, at most; past it the oldest is closed.
        public var maxUnauthenticated = 32
        /// Seconds running calls get to finish after SIGTERM before they are killed.
        public var grace: Double = 10
        /// Where harnesses reach this pool; defaults to the listen address.
        public var advertise: String?
        public var databaseURL: String?
        public var heartbeatInterval: Double = 2
        public var uidBase: UInt32 = 200_000
        /// The folder of the uid ranges' lock files, shared by every pool of the host (`--uid-locks`).
        public var uidLocks = UidRange.lockFolder
        /// Seconds a sandbox may sit idle before it is reclaimed (nil: never).
        public var idleTTL: Double? = 1800
        /// Threads waiting on running calls.
        public var callThreads = 256
        /// Accept `memory_mb` / `processes` as per-process rlimits where no control group can be made.
        public var allowUnenforcedLimits = false
        public var seccomp = true
        /// Make a control group per sandbox where the host allows it.
        public var cgroups = true
        /// Give each sandbox a size-capped tmpfs (disk_mb over /workspace and /tmp) where the host allows it.
        public var diskQuota = true
        /// Give networked sandboxes (environments with networking, sessions with repositories) their
        /// egress proxy; off: such provisions are refused with `network_unavailable`.
        public var networking = true
        /// Which internal addresses sandboxes may reach through the egress proxy (`--allow-internal`):
        /// none by default, whatever an environment names.
        public var addressRule = AddressRule(ownAddresses: OutboundResolver.ownAddresses())
        /// The most a provision may ask for (`--max-resources`); more is refused with
        /// `resources_above_ceiling`.
        public var ceilings = ResourceCeilings()
        /// Proxied connections one call may have open at once; more are closed at once.
        public var egressConnections = 64
        /// Where environments' packages come from (`--pip-index-url`, `--npm-registry`, `--apt-source`).
        public var packages = PackageInstaller()
        /// Where package layers are kept (`--package-cache`; default a folder in the workspace
        /// root, gone with the pool); seconds one install may take.
        public var packageCache: String?
        public var packageTimeout: Double = 900
        /// Where to serve /metrics, /healthz and /readyz (off when nil).
        public var metricsListen: (host: String, port: UInt16)?

        public init(token: String) { self.token = token }
    }

    public let config: Config
    public init(config: Config) { self.config = config }

    /// Runs until SIGTERM or SIGINT; returns the exit status.
    /// Runs as a group of one that owns SIGTERM and SIGINT (the command's lifecycle).
    public func run() async throws -> Int32 {
        try await ServiceGroup([self], deadline: config.grace + 30, log: Log(component: "sandbox-pool")).run()
    }

    public var name: String { "sandbox-pool" }

    /// Serves until `stop` fires, then drains (see `ServiceGroup`).
    public func run(until stop: ShutdownTrigger) async throws -> Int32 {
        // The same shape as a harness id: new at every start, host and pid for operators.
        let poolID = HarnessID.fresh(prefix: "pool").rawValue
        let log = Log(component: "sandbox-pool", context: [("pool", .string(poolID))])
        let isolation = try Isolation(mode: config.isolation, seccomp: config.seccomp)
        if config.isolation == .none {
            log.warning("INSECURE: started with --insecure-no-isolation; tool calls run as plain processes on this host")
            FileHandle.standardError.write(Data("\n*** drover sandbox-pool: NO ISOLATION. Model-written code runs on this host. ***\n\n".utf8))
        } else if !config.seccomp {
            log.warning("started with --no-seccomp: sandboxed programs reach the kernel's whole syscall surface")
        }
        let root = config.workspaceRoot ?? NSTemporaryDirectory() + "drover-pool-" + SandboxPool.randomHex()
        // Pools on one host take disjoint uid ranges, so their sandboxes never share a uid.
        let uids = try UidRange(base: config.uidBase, size: SandboxPool.uidsPerPool, folder: config.uidLocks)
        let swept = LeakedWorkspaces.sweep(own: uids, base: config.uidBase, size: SandboxPool.uidsPerPool)
        if swept > 0 { log.info("unmounted workspaces that dead pools left behind", ("count", .number(Double(swept)))) }
        let cgroups: SandboxCgroups?
        switch config.cgroups ? SandboxCgroups.prepare(poolID: poolID) : .failure(IsolationError("started with --no-cgroups")) {
        case .success(let made):
            cgroups = made
        case .failure(let reason):
            cgroups = nil
            log.warning(
                config.allowUnenforcedLimits
                    ? "no control groups: memory_mb and processes fall back to per-process rlimits (--allow-unenforced-limits)"
                    : "no control groups: provisions that set memory_mb or processes are refused (limit_unenforceable)",
                ("reason", .string(reason.description)))
        }
        let registry = try await connectRegistry(log: log)
        let metrics = PoolMetrics()
        let networking = isolation.networking && config.networking
        let egress = networking ? try EgressProxy(maxConnectionsPerCall: config.egressConnections, rule: config.addressRule, log: log, metrics: metrics) : nil
        let layers = try PackageLayers(root: config.packageCache ?? root + "/packages", installer: config.packages, timeout: config.packageTimeout, log: log)
        let pool = try SandboxPool(
            config: .init(
                root: root, capacity: config.capacity, warm: config.warm, uidBase: uids.first, idleTTL: config.idleTTL,
                waitThreads: config.callThreads, allowUnenforcedLimits: config.allowUnenforcedLimits, diskQuota: config.diskQuota),
            isolation: isolation, cgroups: cgroups, log: log, egress: egress, layers: layers
        ) { event in
            switch event {
            case .provisioned: metrics.provisioned.inc()
            case .ended(_, let reason): metrics.ended.inc(["reason": reason.rawValue])
            }
            guard let registry else { return }
            // Best effort: a lost update is healed by the next heartbeat, which lists the live sandboxes.
            Task {
                do {
                    switch event {
                    case .provisioned(let id, let session): try await registry.recordSandbox(id: id, pool: poolID, session: session)
                    case .ended(let id, let reason): try await registry.sandboxEnded(id: id, reason: reason.rawValue)
                    }
                } catch {
                    log.warning("registry update failed", ("error", .string(String(reflecting: error))))
                }
            }
        }
        do {
            try await selfCheck(pool)
        } catch {
            await pool.destroyAll()
            throw error
        }
        if !networking {
            log.info("sandboxes get no network: provisions with networking or repositories are refused (network_unavailable)",
                     ("reason", .string(config.networking ? "the pool is not root with bubblewrap" : "started with --no-network")))
        }
        // A port that cannot be bound must not leave the warm sandboxes and the pool's control
        // groups behind (they were made above): everything is taken down before the error goes up.
        let listener: Listener
        do {
            listener = try Listener(host: config.host, port: config.port)
        } catch {
            await pool.destroyAll()
            throw error
        }
        let address = config.advertise ?? "\(listener.host):\(listener.port)"
        metrics.registry.gauge("drover_sandboxes_live", "Sandboxes alive in this pool.") { Double(pool.load.sandboxes) }
        metrics.registry.gauge("drover_tool_calls_running", "Tool calls running now.") { Double(pool.runningCalls) }
        metrics.registry.gauge("drover_provisions_waiting", "Provisions waiting in line for room (every sandbox running a call).") {
            Double(pool.admission.count)
        }
        let draining = Mutex(false)
        let ops: OpsEndpoint?
        let server: PoolServer
        do {
            ops = try config.metricsListen.map { listen in
                try OpsEndpoint(host: listen.host, port: listen.port, metrics: metrics.registry, ready: { !draining.withLock { $0 } }) {
                    ["pool": .string(poolID), "enforcement": pool.enforcement]
                }
            }
            server = try PoolServer(
                config: .init(poolID: poolID, token: config.token, maxLineLength: config.maxLineLength,
                              helloDeadline: config.helloDeadline, maxConnections: config.maxConnections,
                              maxUnauthenticated: config.maxUnauthenticated, ceilings: config.ceilings),
                pool: pool, listener: listener, log: log, metrics: metrics)
        } catch {
            listener.close()
            await pool.destroyAll()
            throw error
        }
        if let ops { log.info("metrics listening", ("address", .string(ops.address))) }
        server.start()
        pool.refillWarm()
        if let registry {
            try? await registry.register(id: poolID, address: address, capacity: config.capacity, silentAfter: config.heartbeatInterval * 5)
        }
        let heartbeat = Task { await heartbeatLoop(registry: registry, poolID: poolID, pool: pool, log: log) }
        let reaper = Task { await reapLoop(pool) }
        log.info(
            "listening", ("address", .string("\(listener.host):\(listener.port)")), ("advertise", .string(address)),
            ("isolation", .string(config.isolation == .bubblewrap ? "bubblewrap" : "none")), ("warm", .number(Double(config.warm))),
            ("capacity", .number(Double(config.capacity))), ("registry", .bool(registry != nil)),
            ("idle_ttl_s", config.idleTTL.map { .number($0) } ?? .null), ("uid_slot", .number(Double(uids.slot))),
            ("enforcement", pool.enforcement))

        let signal = await stop.wait()
        log.info("draining", ("signal", .number(Double(signal))), ("running_calls", .number(Double(pool.runningCalls))))
        draining.withLock { $0 = true }
        await server.stopAccepting()
        pool.beginShutdown()
        let deadline = ContinuousClock.now + .seconds(config.grace)
        while server.inFlight > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let abandoned = server.inFlight
        await pool.destroyAll()
        // Give killed calls a moment to send their replies before the connections close.
        if abandoned > 0 { try? await Task.sleep(for: .milliseconds(100)) }
        await server.closeConnections()
        heartbeat.cancel()
        reaper.cancel()
        if let registry {
            try? await registry.stopped(id: poolID)
            registry.pool.close()
        }
        await egress?.stop()
        ops?.stop()
        log.info("stopped", ("killed_calls", .number(Double(abandoned))))
        withExtendedLifetime(uids) {}
        return 0
    }

    /// Runs `true` in a throwaway sandbox: refuses to start when isolation does not work here.
    private func selfCheck(_ pool: SandboxPool) async throws {
        let sandbox: Sandbox
        do {
            sandbox = try await pool.provision(SandboxResources(), session: nil, announced: false)
        } catch {
            throw IsolationError("cannot make a sandbox: \(error)")
        }
        let outcome = await pool.tools.run("bash", input: ["command": "true"], in: sandbox)
        try? await pool.destroy(sandbox.id)
        guard case .success(let result) = outcome, result["exit_code"]?.intValue == 0 else {
            let detail = (try? outcome.get())?["output"]?.stringValue ?? "\(outcome)"
            throw IsolationError(
                "a sandbox could not start here (\(detail.trimmingCharacters(in: .whitespacesAndNewlines))). "
                    + "bubblewrap needs unprivileged user namespaces; or start with --insecure-no-isolation for development")
        }
    }

    private func connectRegistry(log: Log) async throws -> PoolRegistry? {
        guard let url = config.databaseURL, !url.isEmpty else {
            log.info("no DATABASE_URL: running without the registry")
            return nil
        }
        return PoolRegistry(pool: ConnectionPool(conninfo: url, maxConnections: 2, connectTimeout: 10))
    }

    /// Reports load and live sandboxes; destroys those whose session ended for good.
    private func heartbeatLoop(registry: PoolRegistry?, poolID: String, pool: SandboxPool, log: Log) async {
        guard let registry else { return }
        while !Task.isCancelled {
            do {
                let ended = try await registry.heartbeat(
                    id: poolID, runningCalls: pool.runningCalls, live: pool.all.map(\.id), waiting: pool.admission.count)
                for id in ended { try? await pool.destroy(id, reason: .sessionEnded) }
            } catch {
                log.warning("registry heartbeat failed", ("error", .string(String(reflecting: error))))
            }
            try? await Task.sleep(for: .seconds(config.heartbeatInterval))
        }
    }

    /// Reclaims idle sandboxes, checking a few times per TTL.
    private func reapLoop(_ pool: SandboxPool) async {
        guard let ttl = config.idleTTL else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(max(0.1, min(ttl / 4, 5))))
            await pool.reclaimIdle()
        }
    }
}
