import DroverCore
import DroverIO
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// `drover api`: stateless; all state in Postgres, so run as many replicas as you like behind a
/// load balancer (TLS terminated in front). Needs only DATABASE_URL: it holds no model key and no
/// pool token.
public struct APIDaemon: Service {
    public struct Config: Sendable {
        public var host = "127.0.0.1"
        public var port: UInt16 = 8080
        public var databaseURL: String
        public var databaseConnections = 8
        /// Seconds requests in flight get to finish after SIGTERM.
        public var grace: Double = 10
        public var server = APIServer.Config()
        /// Bytes of events a stream may have waiting for a slow client before it is cut off.
        public var streamBuffer = 8 << 20
        /// Seconds a stream's buffer may stay full while its client takes nothing, before it is cut off.
        public var streamStall: Double = 5
        public var metricsListen: (host: String, port: UInt16)?
        /// Seals credentials' and repositories' secrets (`VaultKey`); nil: such requests are refused.
        public var vaultKey: String?
        /// The most an environment's `config.resources` may ask (`--max-resources`).
        public var ceilings = ResourceCeilings()
        /// Seconds a self-hosted work item's lease lasts when its worker asks for none (`--work-ttl`).
        public var workLeaseTTL = 30
        /// Deployments' schedules (`--schedule-*`); nil: this process fires none (`--no-scheduler`).
        public var scheduler: DeploymentScheduler.Config? = DeploymentScheduler.Config()
        /// Webhook deliveries (`--webhook-*`).
        public var webhooks = WebhookDeliverer.Config()
        /// The wall clock schedules are read against (`DROVER_CLOCK`, for tests).
        public var clock = WallClock.system
        public init(databaseURL: String) { self.databaseURL = databaseURL }
    }

    public let config: Config
    public init(config: Config) { self.config = config }

    /// Runs as a group of one that owns SIGTERM and SIGINT (the command's lifecycle).
    public func run() async throws -> Int32 {
        try await ServiceGroup([self], deadline: config.grace + 30, log: Log(component: "api")).run()
    }

    public var name: String { "api" }

    /// Serves until `stop` fires, then drains (see `ServiceGroup`).
    public func run(until stop: ShutdownTrigger) async throws -> Int32 {
        let log = Log(component: "api")
        let pool = ConnectionPool(conninfo: config.databaseURL, maxConnections: config.databaseConnections, connectTimeout: 10)
        let store = TenantStore(pool: pool)
        let hub = EventStreamHub(store: store, maxBytesPerStream: config.streamBuffer, stallLimit: .seconds(config.streamStall), log: log)
        let console = ConsoleFiles()
        if console.isEmpty { log.warning("no console files found: /console/ is not served (set DROVER_CONSOLE_DIR)") }
        let apiMetrics = APIMetrics()
        let workBell = Doorbell()
        let router = APIRouter(store: store, hub: hub, log: log, console: console, metrics: apiMetrics, vaultKey: config.vaultKey,
                               ceilings: config.ceilings, workLeaseTTL: config.workLeaseTTL, workBell: workBell, clock: config.clock,
                               outbound: config.webhooks.addressRule)
        if config.vaultKey == nil { log.info("no vault key (DROVER_VAULT_KEY): credentials and repository tokens cannot be stored") }
        let listener = try Listener(host: config.host, port: config.port)
        let server = try APIServer(config: config.server, listener: listener, hub: hub, log: log, loop: EventLoop.shared()) { request, requestID in
            await router.handle(request, requestID: requestID)
        }
        let metrics = apiMetrics.registry
        metrics.gauge("drover_api_streams", "Event streams open on this process.") { Double(hub.streamCount) }
        metrics.gauge("drover_api_connections", "HTTP connections open on this process.") { Double(server.connectionCount) }
        let draining = Mutex(false)
        let ops = try config.metricsListen.map { listen in
            try OpsEndpoint(host: listen.host, port: listen.port, metrics: metrics) { !draining.withLock { $0 } }
        }
        // One listener connection per process wakes every stream's poll when a user event is sent
        // or a harness's group commit appended events.
        // Previews of model calls (`event_deltas`) come on the same connection and are handed to
        // their streams there, on the listener's thread, without waking the poller: a harness
        // sends a message's last preview before it commits the message, so the preview reaches a
        // stream before the poll that reads the message.
        let doorbell = try PostgresListener(
            conninfo: config.databaseURL,
            channels: [LeaseQueue.userEventChannel, LeaseQueue.runnableChannel, LeaseQueue.eventsChannel, LeaseQueue.previewsChannel]
        ) { note in
            guard note.channel == LeaseQueue.previewsChannel else { return false }
            hub.preview(note.payload)
            return true
        }
        let poller = Task { await hub.run(listener: doorbell) }
        // The harnesses are reminded of the sessions streamed with previews.
        let previewWatch = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(20))
                do { try await store.watchPreviews(sessions: Array(hub.previewedSessions)) } catch {
                    log.debug("preview watch not sent", ("error", .string("\(error)")))
                }
            }
        }
        // Self-hosted work: a queued item (or a lease put back) rings the long polls waiting on it.
        let workListener = try PostgresListener(conninfo: config.databaseURL, channels: [WorkQueue.channel])
        let workBells = Task {
            for await _ in workListener.notifications { workBell.ring() }
        }
        // The fleet page's queue chart reads these samples (drover.queue_history).
        let sampler = Task {
            while !Task.isCancelled {
                do { try await store.sampleQueue() } catch { log.debug("queue sample failed", ("error", .string("\(error)"))) }
                try? await Task.sleep(for: .seconds(15))
            }
        }
        // Deployments' schedules (one process fires, by lease) and webhook deliveries (every process).
        let holder = HarnessID.fresh(prefix: "api").rawValue
        let scheduler = config.scheduler.map { settings in
            Task {
                var settings = settings
                settings.clock = config.clock
                await DeploymentScheduler(store: store, config: settings, vaultKey: config.vaultKey, log: log, holder: holder).run()
            }
        }
        let deliverer = Task { await WebhookDeliverer(store: store, config: config.webhooks, vaultKey: config.vaultKey, log: log, holder: holder).run() }
        server.start()
        log.info("listening", ("address", .string("\(listener.host):\(listener.port)")), ("metrics", ops.map { .string($0.address) } ?? .null))
        let signal = await stop.wait()
        log.info("draining", ("signal", .number(Double(signal))))
        draining.withLock { $0 = true }
        await server.drain(deadline: config.grace)
        // The poller, the sampler, the preview watch, the scheduler and the deliverer use the database: they end before its connections close.
        for task in [poller, sampler, deliverer, previewWatch] + (scheduler.map { [$0] } ?? []) { task.cancel() }
        for task in [poller, sampler, deliverer, previewWatch] + (scheduler.map { [$0] } ?? []) { await task.value }
        doorbell.stop()
        workListener.stop()
        workBells.cancel()
        ops?.stop()
        pool.close()
        log.info("stopped")
        return 0
    }
}
