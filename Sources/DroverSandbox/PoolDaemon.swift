import DroverCore
import DroverIO
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// `drover sandbox-pool`: owns sandboxes and serves the pool protocol until SIGTERM, then drains.
public struct PoolDaemon: Sendable {
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
        /// Seconds running calls get to finish after SIGTERM before they are killed.
        public var grace: Double = 10
        /// Where harnesses reach this pool; defaults to the listen address.
        public var advertise: String?
        public var databaseURL: String?
        public var heartbeatInterval: Double = 2
        public var uidBase: UInt32 = 200_000
        /// Where to serve /metrics, /healthz and /readyz (off when nil).
        public var metricsListen: (host: String, port: UInt16)?

        public init(token: String) { self.token = token }
    }

    public let config: Config
    public init(config: Config) { self.config = config }

    /// Runs until SIGTERM or SIGINT; returns the exit status.
    public func run() async throws -> Int32 {
        // The same shape as a harness id: new at every start, host and pid for operators.
        let poolID = HarnessID.fresh(prefix: "pool").rawValue
        let log = Log(component: "sandbox-pool", context: [("pool", .string(poolID))])
        let isolation = try Isolation(mode: config.isolation)
        if config.isolation == .none {
            log.warning("INSECURE: started with --insecure-no-isolation; tool calls run as plain processes on this host")
            FileHandle.standardError.write(Data("\n*** drover sandbox-pool: NO ISOLATION. Model-written code runs on this host. ***\n\n".utf8))
        }
        let root = config.workspaceRoot ?? NSTemporaryDirectory() + "drover-pool-" + SandboxPool.randomHex()
        // Pools on one machine take different uid ranges (by pid), so their sandboxes never share a uid.
        let uidBase: UInt32 = config.uidBase + UInt32(getpid() % 64) * 60_000
        let pool = try SandboxPool(
            config: .init(root: root, capacity: config.capacity, warm: config.warm, uidBase: uidBase),
            isolation: isolation, log: log)
        do {
            try await selfCheck(pool)
        } catch {
            pool.destroyAll()
            throw error
        }
        let listener = try Listener(host: config.host, port: config.port)
        let address = config.advertise ?? "\(listener.host):\(listener.port)"
        let registry = try await connectRegistry(log: log)
        let metrics = PoolMetrics()
        metrics.registry.gauge("drover_sandboxes_live", "Sandboxes alive in this pool.") { Double(pool.load.sandboxes) }
        metrics.registry.gauge("drover_tool_calls_running", "Tool calls running now.") { Double(pool.runningCalls) }
        let draining = Mutex(false)
        let ops = try config.metricsListen.map { listen in
            try OpsEndpoint(host: listen.host, port: listen.port, metrics: metrics.registry) { !draining.withLock { $0 } }
        }
        if let ops { log.info("metrics listening", ("address", .string(ops.address))) }
        let server = PoolServer(
            config: .init(poolID: poolID, token: config.token, maxLineLength: config.maxLineLength,
                          helloDeadline: config.helloDeadline, maxConnections: config.maxConnections),
            pool: pool, listener: listener, log: log, metrics: metrics
        ) { event in
            if case .provisioned = event { metrics.provisioned.inc() }
            guard let registry else { return }
            Task {
                do {
                    switch event {
                    case .provisioned(let id, let session): try await registry.recordSandbox(id: id, pool: poolID, session: session)
                    case .destroyed(let id): try await registry.sandboxEnded(id: id)
                    }
                } catch {
                    log.warning("registry update failed", ("error", .string(String(reflecting: error))))
                }
            }
        }
        server.start()
        pool.refillWarm()
        if let registry {
            try? await registry.register(id: poolID, address: address, capacity: config.capacity)
        }
        let heartbeat = Task { await heartbeatLoop(registry: registry, poolID: poolID, pool: pool, log: log) }
        log.info(
            "listening", ("address", .string("\(listener.host):\(listener.port)")), ("advertise", .string(address)),
            ("isolation", .string(config.isolation == .bubblewrap ? "bubblewrap" : "none")), ("warm", .number(Double(config.warm))),
            ("capacity", .number(Double(config.capacity))), ("registry", .bool(registry != nil)))

        let signal = await TerminationSignal.wait()
        log.info("draining", ("signal", .number(Double(signal))), ("running_calls", .number(Double(pool.runningCalls))))
        draining.withLock { $0 = true }
        server.stopAccepting()
        pool.beginShutdown()
        let deadline = ContinuousClock.now + .seconds(config.grace)
        while server.inFlight > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let abandoned = server.inFlight
        pool.destroyAll()
        // Give killed calls a moment to send their replies before the connections close.
        if abandoned > 0 { try? await Task.sleep(for: .milliseconds(100)) }
        server.closeConnections()
        heartbeat.cancel()
        if let registry {
            try? await registry.stopped(id: poolID)
            registry.pool.close()
        }
        ops?.stop()
        log.info("stopped", ("killed_calls", .number(Double(abandoned))))
        return 0
    }

    /// Runs `true` in a throwaway sandbox: refuses to start when isolation does not work here.
    private func selfCheck(_ pool: SandboxPool) async throws {
        let sandbox: Sandbox
        do {
            sandbox = try await pool.provision(SandboxResources(), session: nil)
        } catch {
            throw IsolationError("cannot make a sandbox: \(error)")
        }
        defer { try? pool.destroy(sandbox.id) }
        let outcome = await pool.tools.run("bash", input: ["command": "true"], in: sandbox)
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

    private func heartbeatLoop(registry: PoolRegistry?, poolID: String, pool: SandboxPool, log: Log) async {
        guard let registry else { return }
        while !Task.isCancelled {
            do {
                let load = pool.load
                let gone = try await registry.heartbeat(
                    id: poolID, sandboxes: load.sandboxes, runningCalls: load.running, goneAfter: config.heartbeatInterval * 5)
                if gone > 0 { log.warning("marked silent pools gone", ("pools", .number(Double(gone)))) }
            } catch {
                log.warning("registry heartbeat failed", ("error", .string(String(reflecting: error))))
            }
            try? await Task.sleep(for: .seconds(config.heartbeatInterval))
        }
    }
}
