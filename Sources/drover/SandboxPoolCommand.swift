import DroverCLI
import DroverCore
import DroverIO
import DroverSandbox
import Foundation

struct SandboxPoolCommand: Command {
    static let name = "sandbox-pool"
    static let summary = "run the sandbox pool daemon (line-delimited JSON over TCP)"
    static let help = """
        usage: drover sandbox-pool [--listen HOST:PORT] (--token-file FILE | $DROVER_POOL_TOKEN)
                                   [--warm K] [--capacity N] [--grace SECONDS] [--max-line BYTES]
                                   [--workspace-root DIR] [--advertise HOST:PORT] [--uid-locks DIR]
                                   [--hello-deadline SECONDS] [--max-connections N]
                                   [--max-unauthenticated N]
                                   [--idle-ttl SECONDS] [--call-threads N]
                                   [--allow-unenforced-limits] [--no-cgroups] [--no-seccomp]
                                   [--no-disk-quota] [--no-network] [--egress-connections N]
                                   [--allow-internal RANGES] [--max-resources KEY=N,…]
                                   [--package-cache DIR] [--package-timeout SECONDS]
                                   [--pip-index-url URL] [--npm-registry URL]
                                   [--apt-source LINE] [--insecure-no-isolation]

        Owns sandboxes (bubblewrap: no credentials, no view of the host, a seccomp filter; per
        sandbox a control group for memory and processes and, as root, a disk quota; no network
        unless the environment's networking allows it, and then only through the pool's egress
        proxy, which enforces that policy per connection and relays repositories)
        and serves provision / execute / cancel / destroy / list / stats / ping to harnesses. A
        full pool reclaims its least recently used idle sandbox; a sandbox whose session was
        terminated or deleted is destroyed at the next registry heartbeat. See
        docs/sandbox-protocol.md. Logs one JSON object per line on standard error. On SIGTERM it
        stops accepting, lets running calls finish for --grace seconds, kills the rest, removes
        every sandbox and exits 0.

          --listen HOST:PORT      address to listen on (default 127.0.0.1:7420; port 0 picks one,
                                  printed in the "listening" log line)
          --token-file FILE       the shared token harnesses send in hello (or DROVER_POOL_TOKEN)
          --warm K                sandboxes kept ready for an instant provision (default 2)
          --capacity N            most sandboxes at once (default 64)
          --grace SECONDS         drain time on SIGTERM (default 10)
          --max-line BYTES        longest request line (default 8388608)
          --hello-deadline S      seconds a connection has to authenticate (default 10); a silent
                                  or slow one is closed
          --max-connections N     connections at once (default 256); more are refused with
                                  too_many_connections
          --max-unauthenticated N connections that have not said hello yet (default 32); past it
                                  the oldest is closed, so a flood never keeps a harness out
          --idle-ttl SECONDS      reclaim a sandbox idle this long (default 1800; 0: never)
          --call-threads N        threads that wait on running calls (default 256); more calls
                                  wait their turn
          --allow-unenforced-limits
                                  where no control group can be made, accept memory_mb and
                                  processes as per-process rlimits (default: refuse them with
                                  limit_unenforceable); the start-up log and /readyz say which
          --no-cgroups            make no control groups (as on a host without them)
          --no-disk-quota         keep workspaces on the host filesystem instead of a tmpfs per
                                  sandbox (memory-backed); disk_mb then bounds each file only
          --no-network            give no sandbox a network (provisions with networking or
                                  repositories are refused with network_unavailable)
          --egress-connections N  proxied connections one call may have open at once (default 64)
          --allow-internal RANGES loopback, private, link-local or this host's addresses that
                                  sandboxes may reach through the proxy, as comma-separated ranges
                                  (10.1.0.0/16,127.0.0.2); default none, whatever an environment
                                  names (or DROVER_ALLOW_INTERNAL)
          --max-resources KEY=N,… ceilings on what a provision may ask: timeout_s, cpu_s,
                                  memory_mb, disk_mb, processes (defaults 3600, 3600, 8192, 16384,
                                  1024); more is refused with resources_above_ceiling
          --package-cache DIR     where environments' packages are kept, one layer per package set,
                                  installed once and mounted read-only into every sandbox of the
                                  environment (default a folder in the workspace root, removed at
                                  exit; name one to keep layers across restarts)
          --package-timeout S     seconds one environment's install may take (default 900)
          --pip-index-url URL     pip's index (default https://pypi.org/simple); a plain-http
                                  mirror is trusted as named
          --npm-registry URL      npm's registry (default https://registry.npmjs.org)
          --apt-source LINE       one sources.list line for apt (default the host's /etc/apt
                                  sources), e.g. "deb [trusted=yes] http://mirror/debian ./"
                                  The mirrors' hosts are what the install reaches, and what
                                  allow_package_managers opens to sandboxes
          --no-seccomp            run sandboxes without the seccomp filter (not recommended)
          --workspace-root DIR    where workspaces live (default a new folder in $TMPDIR)
          --uid-locks DIR         the lock files by which the pools of one host take distinct uid
                                  ranges: every pool of the host must see the same folder, whatever
                                  container it runs in (default $DROVER_UID_LOCKS or /run/drover;
                                  the deployment files mount the host's /run/drover)
          --advertise HOST:PORT   address recorded in the registry (default the listen address)
          --insecure-no-isolation run tools as plain processes: development only, logged loudly
        \(DaemonOptions.help)

        DATABASE_URL, when set, registers the pool and its sandboxes in Postgres (optional).
        """
    static let options: Set<String> = Set(["listen", "token-file", "warm", "capacity", "grace", "max-line", "workspace-root", "advertise", "hello-deadline", "max-connections", "max-unauthenticated", "idle-ttl", "call-threads", "egress-connections", "allow-internal", "max-resources", "uid-locks", "package-cache", "package-timeout", "pip-index-url", "npm-registry", "apt-source"])
        .union(DaemonOptions.names)
    static let flags: Set<String> = ["insecure-no-isolation", "allow-unenforced-limits", "no-cgroups", "no-seccomp", "no-disk-quota", "no-network"]

    static func run(_ arguments: Arguments) async throws {
        var token = ProcessInfo.processInfo.environment["DROVER_POOL_TOKEN"] ?? ""
        if let file = arguments.value("token-file") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw UsageError("cannot read --token-file \(file)") }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !token.isEmpty else { throw UsageError("a token is required: --token-file FILE or DROVER_POOL_TOKEN") }
        var config = PoolDaemon.Config(token: token)
        config.metricsListen = try DaemonOptions.apply(arguments)
        if let listen = arguments.value("listen") {
            guard let (host, port) = parseHostPort(listen) else { throw UsageError("--listen takes HOST:PORT") }
            config.host = host
            config.port = port
        }
        if let warm = try arguments.int("warm") { config.warm = max(0, warm) }
        if let capacity = try arguments.int("capacity") {
            guard capacity > 0 else { throw UsageError("--capacity must be positive") }
            config.capacity = capacity
        }
        if let grace = try arguments.double("grace") { config.grace = grace }
        if let deadline = try arguments.double("hello-deadline") {
            guard deadline > 0 else { throw UsageError("--hello-deadline must be positive") }
            config.helloDeadline = deadline
        }
        if let cap = try arguments.int("max-connections") {
            guard cap > 0 else { throw UsageError("--max-connections must be positive") }
            config.maxConnections = cap
        }
        if let budget = try arguments.int("max-unauthenticated") {
            guard budget > 0 else { throw UsageError("--max-unauthenticated must be positive") }
            config.maxUnauthenticated = budget
        }
        if let maxLine = try arguments.int("max-line") {
            guard maxLine >= 1024 else { throw UsageError("--max-line must be at least 1024") }
            config.maxLineLength = maxLine
        }
        if let ttl = try arguments.double("idle-ttl") {
            guard ttl >= 0 else { throw UsageError("--idle-ttl must be 0 (never) or positive") }
            config.idleTTL = ttl == 0 ? nil : ttl
        }
        if let threads = try arguments.int("call-threads") {
            guard threads > 0 else { throw UsageError("--call-threads must be positive") }
            config.callThreads = threads
        }
        if let connections = try arguments.int("egress-connections") {
            guard connections > 0 else { throw UsageError("--egress-connections must be positive") }
            config.egressConnections = connections
        }
        config.addressRule = try OutboundResolver.operatorRule(allowed: arguments.value("allow-internal"))
        if let ceilings = arguments.value("max-resources") { config.ceilings = try ResourceCeilings(parsing: ceilings) }
        config.packageCache = arguments.value("package-cache")
        if let seconds = try arguments.double("package-timeout") {
            guard seconds > 0 else { throw UsageError("--package-timeout must be positive") }
            config.packageTimeout = seconds
        }
        for (option, keyPath) in [("pip-index-url", \PackageInstaller.pipIndexURL), ("npm-registry", \PackageInstaller.npmRegistry)] {
            guard let url = arguments.value(option) else { continue }
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw UsageError("--\(option) takes an http:// or https:// URL") }
            config.packages[keyPath: keyPath] = url
        }
        if let line = arguments.value("apt-source") {
            guard line.hasPrefix("deb "), !line.contains("\n") else { throw UsageError("--apt-source takes one sources.list line (deb [options] URL suite [components])") }
            config.packages.aptSource = line
        }
        config.networking = !arguments.has("no-network")
        config.allowUnenforcedLimits = arguments.has("allow-unenforced-limits")
        config.seccomp = !arguments.has("no-seccomp")
        config.cgroups = !arguments.has("no-cgroups")
        config.diskQuota = !arguments.has("no-disk-quota")
        config.workspaceRoot = arguments.value("workspace-root")
        if let folder = arguments.value("uid-locks") { config.uidLocks = folder }
        config.advertise = arguments.value("advertise")
        config.isolation = arguments.has("insecure-no-isolation") ? .none : .bubblewrap
        config.databaseURL = ProcessInfo.processInfo.environment["DATABASE_URL"]
        do {
            exit(try await PoolDaemon(config: config).run())
        } catch let error as IsolationError {
            Output.error("error: isolation_unavailable: \(error)")
            exit(1)
        }
    }
}
