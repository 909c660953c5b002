import DroverCLI
import DroverAPI
import DroverCore
import DroverIO
import DroverStore
import Foundation

struct APICommand: Command {
    static let flags: Set<String> = ["no-scheduler"]
    static let name = "api"
    static let summary = "serve the Managed Agents-compatible HTTP API"
    static let help = """
        usage: drover api [--listen HOST:PORT] [--db-connections N] [--grace SECONDS]
                          [--request-deadline SECONDS] [--stream-buffer BYTES] [--stream-stall SECONDS]
                          [--max-resources KEY=N,…] [--max-connections N]
                          [--max-connections-per-client N] [--work-ttl SECONDS]
                          [--no-scheduler] [--schedule-interval S] [--schedule-lease-ttl S]
                          [--schedule-catch-up S] [--allow-internal RANGES]
                          [--webhook-retry-base S] [--webhook-retry-cap S] [--webhook-give-up S]
                          [--webhook-timeout S]

        Serves /v1/agents, /v1/environments, /v1/sessions and /v1/sessions/{id}/events (send,
        list, stream) as Managed Agents does, so the official Anthropic SDKs work with base_url
        pointed here. Keys come from `drover api-key create`. Stateless: run as many replicas as
        you like behind a load balancer; terminate TLS in front (docs/api.md). Needs only
        DATABASE_URL. On SIGTERM it stops accepting, lets requests finish for --grace seconds and
        closes streams. Vaults (/v1/vaults) and repository tokens need DROVER_VAULT_KEY or
        DROVER_VAULT_KEY_FILE, the key secrets are sealed with (`drover vault new-key`); the
        database never holds it.

          --listen HOST:PORT      address (default 127.0.0.1:8080; port 0 picks one, printed in the
                                  "listening" log line)
          --db-connections N      Postgres connections (default 8)
          --grace SECONDS         drain time on SIGTERM (default 10)
          --request-deadline S    seconds a request has, from its first byte, to arrive whole
                                  (default 10); slower clients get 408 and are cut off
          --stream-buffer BYTES   events a stream may hold for a client that reads too slowly
                                  (default 8388608); a full buffer pauses the stream (a resume's
                                  backlog is caught up as the client reads)
          --stream-stall SECONDS  how long a full buffer may wait for its client to read before
                                  the stream is cut off (default 5)
          --max-connections N     connections at once (default 1024); more get 503
          --max-connections-per-client N
                                  connections one client address may hold (default 256), so no
                                  one client takes every place; more get 503
          --max-resources KEY=N,… ceilings on an environment's config.resources: timeout_s,
                                  cpu_s, memory_mb, disk_mb, processes (defaults 3600, 3600, 8192,
                                  16384, 1024); more is refused with 400 (set pools' alike)
          --work-ttl SECONDS      a self-hosted work item's lease when its worker asks for none
                                  (default 30; the SDK's worker heartbeats at half of it); a worker
                                  silent for longer loses the item to the queue
          --no-scheduler          fire no deployment schedules from this process (by default
                                  every replica takes part: one at a time holds the lease)
          --schedule-interval S   seconds between the scheduler's passes (default 1)
          --schedule-lease-ttl S  seconds the scheduler's lease lasts unrenewed (default 10): how
                                  soon another replica fires after the holder dies
          --schedule-catch-up S   missed scheduled times younger than this are still fired
                                  (default 3600); older ones are skipped and logged
          --allow-internal RANGES loopback, private, link-local or this host's addresses webhook
                                  URLs and mcp_oauth_validate's probes (MCP servers, token
                                  endpoints) may reach, as comma-separated ranges
                                  (127.0.0.1/32); default none (or DROVER_ALLOW_INTERNAL)
          --webhook-retry-base S  first retry of a failed delivery after S seconds, doubling
                                  (default 5)
          --webhook-retry-cap S   the longest wait between retries (default 3600)
          --webhook-give-up S     seconds from an event to giving up its delivery and disabling
                                  the endpoint (default 90000: 25 hours)
          --webhook-timeout S     seconds a delivery may take (default 10)

        DROVER_CLOCK=base=UNIX,rate=N[,anchor=UNIX] runs the schedules' clock from `base`, N
        times as fast (tests drive a day of cron in minutes with it); never set it in production.
        \(DaemonOptions.help)
        """
    static let options: Set<String> = Set(["listen", "db-connections", "grace", "request-deadline", "stream-buffer", "stream-stall", "max-resources", "max-connections", "max-connections-per-client", "work-ttl", "schedule-interval", "schedule-lease-ttl", "schedule-catch-up", "allow-internal", "webhook-retry-base", "webhook-retry-cap", "webhook-give-up", "webhook-timeout"]).union(DaemonOptions.names)

    static func run(_ arguments: Arguments) async throws {
        var config = APIDaemon.Config(databaseURL: try Environment.databaseURL())
        config.metricsListen = try DaemonOptions.apply(arguments)
        if let listen = arguments.value("listen") {
            guard let (host, port) = parseHostPort(listen) else { throw UsageError("--listen takes HOST:PORT") }
            config.host = host
            config.port = port
        }
        if let connections = try arguments.int("db-connections") {
            guard connections > 0 else { throw UsageError("--db-connections must be positive") }
            config.databaseConnections = connections
        }
        if let grace = try arguments.double("grace") { config.grace = grace }
        if let deadline = try arguments.double("request-deadline") {
            guard deadline > 0 else { throw UsageError("--request-deadline must be positive") }
            config.server.requestDeadline = deadline
        }
        if let buffer = try arguments.int("stream-buffer") {
            guard buffer >= 1024 else { throw UsageError("--stream-buffer must be at least 1024") }
            config.streamBuffer = buffer
        }
        if let cap = try arguments.int("max-connections") {
            guard cap > 0 else { throw UsageError("--max-connections must be positive") }
            config.server.maxConnections = cap
        }
        if let share = try arguments.int("max-connections-per-client") {
            guard share > 0 else { throw UsageError("--max-connections-per-client must be positive") }
            config.server.maxConnectionsPerClient = share
        }
        if let stall = try arguments.double("stream-stall") {
            guard stall > 0 else { throw UsageError("--stream-stall must be positive") }
            config.streamStall = stall
        }
        if let ceilings = arguments.value("max-resources") { config.ceilings = try ResourceCeilings(parsing: ceilings) }
        if let ttl = try arguments.int("work-ttl") {
            guard (2...600).contains(ttl) else { throw UsageError("--work-ttl must be 2 to 600") }
            config.workLeaseTTL = ttl
        }
        if arguments.has("no-scheduler") { config.scheduler = nil }
        if var scheduler = config.scheduler {
            if let interval = try arguments.double("schedule-interval") {
                guard interval > 0 else { throw UsageError("--schedule-interval must be positive") }
                scheduler.interval = interval
            }
            if let ttl = try arguments.double("schedule-lease-ttl") {
                guard ttl > 0 else { throw UsageError("--schedule-lease-ttl must be positive") }
                scheduler.ttl = ttl
            }
            if let window = try arguments.double("schedule-catch-up") {
                guard window >= 0 else { throw UsageError("--schedule-catch-up must not be negative") }
                scheduler.catchUp = window
            }
            config.scheduler = scheduler
        }
        config.webhooks.addressRule = try OutboundResolver.operatorRule(allowed: arguments.value("allow-internal"))
        if let base = try arguments.double("webhook-retry-base") { config.webhooks.retry.base = max(0.01, base) }
        if let cap = try arguments.double("webhook-retry-cap") { config.webhooks.retry.cap = max(0.01, cap) }
        if let giveUp = try arguments.double("webhook-give-up") { config.webhooks.retry.giveUpAfter = giveUp }
        if let timeout = try arguments.double("webhook-timeout") {
            guard timeout > 0 else { throw UsageError("--webhook-timeout must be positive") }
            config.webhooks.timeout = timeout
        }
        config.clock = try WallClock.fromEnvironment()
        config.vaultKey = try VaultKey.fromEnvironment()
        exit(try await APIDaemon(config: config).run())
    }
}

struct APIKeyCreateCommand: Command {
    static let name = "api-key create"
    static let summary = "create an API key for an organisation (printed once)"
    static let help = """
        usage: drover api-key create --org NAME [--operator] [--json]

        Creates the organisation if it is new, and a key for it. The key is printed once; only its
        SHA-256 is stored. Clients send it as x-api-key or Authorization: Bearer.

          --org NAME    the organisation
          --operator    the key may also use fleet endpoints
          --json        {"id", "key", "org"} instead of the key alone
        """
    static let options: Set<String> = ["org"]
    static let flags: Set<String> = ["operator", "json"]

    static func run(_ arguments: Arguments) async throws {
        guard let org = arguments.value("org"), !org.isEmpty else { throw UsageError("--org NAME is required") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let made = try await TenantStore(pool: pool).createKey(org: org, operator_: arguments.has("operator"))
        if arguments.has("json") {
            Output.line(JSONValue.object(["id": .string(made.id), "key": .string(made.secret), "org": .string(made.org)]).text)
        } else {
            Output.line(made.secret)
        }
    }
}
