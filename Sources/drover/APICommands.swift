import DroverAPI
import DroverCore
import DroverIO
import DroverStore
import Foundation

struct APICommand: Command {
    static let name = "api"
    static let summary = "serve the Managed Agents-compatible HTTP API"
    static let help = """
        usage: drover api [--listen HOST:PORT] [--db-connections N] [--grace SECONDS]
                          [--request-deadline SECONDS] [--stream-buffer BYTES] [--stream-stall SECONDS]
                          [--max-resources KEY=N,…] [--max-connections N]
                          [--max-connections-per-client N] [--work-ttl SECONDS]

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
        \(DaemonOptions.help)
        """
    static let options: Set<String> = Set(["listen", "db-connections", "grace", "request-deadline", "stream-buffer", "stream-stall", "max-resources", "max-connections", "max-connections-per-client", "work-ttl"]).union(DaemonOptions.names)

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
