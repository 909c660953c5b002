import DroverCLI
import DroverCore
import DroverHarness
import DroverIO
import DroverModel
import DroverStore
import Foundation

struct HarnessCommand: Command {
    static let name = "harness"
    static let summary = "run a harness: claim sessions, call the model, route tools"
    static let help = """
        usage: drover harness [--max-sessions N] [--lease-ttl SECONDS] [--poll-interval SECONDS]
                              [--grace SECONDS] [--provider anthropic|openai] [--model-url URL]
                              [--api-key-file FILE]
                              [--pool-token-file FILE] [--max-turns N] [--context-budget TOKENS]
                              [--db-connections N] [--max-attempts N] [--rescue-interval SECONDS]
                              [--allow-internal RANGES] [--memory-sync-interval SECONDS]
                              [--search-url URL] [--no-notify-streams] [--eager-sandbox]

        A stateless daemon. Claims runnable sessions from the Postgres queue (woken by NOTIFY,
        polling as a fallback), runs up to --max-sessions at once, heartbeats every lease at a
        third of its TTL, and for each session runs the agent loop: the context is a view of the
        log, the model is called with streaming, every step is appended, tool calls go to a
        sandbox pool found in the registry (a sandbox is provisioned on the first tool call).
        A lost lease stops that session's work at once. On SIGTERM it stops claiming, lets steps
        reach a boundary within --grace seconds, hands its sessions back (another harness resumes
        them at once) and exits 0. Logs one JSON object per line with session id and lease epoch.

          --max-sessions N       sessions at once (default 64)
          --lease-ttl SECONDS    lease TTL (default 30)
          --poll-interval S      look for work this often without a notification (default 1)
          --grace SECONDS        drain time on SIGTERM (default 10)
          --provider NAME        anthropic (Messages API, default) or openai (any OpenAI-compatible
                                 chat-completions server: OpenAI, vLLM, llama.cpp, Ollama, …)
          --model-url URL        the API base (default https://api.anthropic.com or
                                 https://api.openai.com; a `drover scripted-model` address for
                                 tests and the demo)
          --api-key-file FILE    the API key (else ANTHROPIC_API_KEY, or OPENAI_API_KEY with
                                 --provider openai); never logged, stored or passed to a sandbox
          --pool-token-file FILE the sandbox pools' token (else DROVER_POOL_TOKEN)
                                 DROVER_VAULT_KEY (or DROVER_VAULT_KEY_FILE) opens sessions'
                                 repository tokens and vault credentials, as `drover api` sealed them
          --max-turns N          model calls per wake before stopping with max_turns (default 50)
          --context-budget N     estimated tokens before the view elides old tool output (150000)
          --db-connections N     pooled Postgres connections (default 3; with the listener, 4 in
                                 all whatever --max-sessions is: sessions share commits)
          --max-attempts N       claims in a row without a clean release before a session is
                                 closed as retries_exhausted (a crash-loop guard; default 5)
          --rescue-interval S    how often to look for harnesses that died holding leases (default
                                 0.25): each harness holds an advisory lock on its listener
                                 connection; when Postgres frees it, the dead harness's sessions are
                                 taken over at once instead of after --lease-ttl
          --allow-internal RANGES
                                 loopback, private, link-local or this host's addresses that
                                 web_fetch and agents' MCP servers may reach, as comma-separated
                                 ranges (127.0.0.2,10.1.0.0/16); default none, whatever an
                                 environment names (or DROVER_ALLOW_INTERNAL)
          --search-url URL       the search backend of the built-in web_search tool: a
                                 SearXNG-style endpoint answering GET URL?q=…&format=json with
                                 {"results": [{"title", "url", "content"}]} (or DROVER_SEARCH_URL);
                                 without one, web_search is not offered. Its address obeys
                                 --allow-internal like web_fetch's
          --memory-sync-interval S
                                 during a long turn, write back what the agent changed in its
                                 read-write memory stores at most this often, after a tool step
                                 (default 30; and always at the end of the turn)
          --no-notify-streams    do not notify drover api's streams after a commit that appends
                                 events (by default one notification follows each such commit,
                                 and streams deliver at once instead of at their 20 ms poll);
                                 --notify-streams, the default, is still accepted
          --eager-sandbox        provision before the first model call (for benchmarks only)
        \(DaemonOptions.help)

        DATABASE_URL is required.
        """
    static let options: Set<String> = Set([
        "max-sessions", "lease-ttl", "poll-interval", "grace", "provider", "model-url", "api-key-file", "pool-token-file", "max-turns",
        "context-budget", "db-connections", "max-attempts", "rescue-interval", "allow-internal", "memory-sync-interval", "search-url",
    ]).union(DaemonOptions.names)
    static let flags: Set<String> = ["eager-sandbox", "notify-streams", "no-notify-streams"]

    static func run(_ arguments: Arguments) async throws {
        let environment = ProcessInfo.processInfo.environment
        func secret(file: String?, variable: String) throws -> String? {
            if let file {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw UsageError("cannot read \(file)") }
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        let providerName = arguments.value("provider") ?? "anthropic"
        guard providerName == "anthropic" || providerName == "openai" else { throw UsageError("--provider is anthropic or openai") }
        let openAI = providerName == "openai"
        let modelURL = arguments.value("model-url") ?? (openAI ? "https://api.openai.com" : "https://api.anthropic.com")
        let apiKey = try secret(file: arguments.value("api-key-file"), variable: openAI ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY")
        guard apiKey != nil || arguments.value("model-url") != nil else {
            throw UsageError("set \(openAI ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY") or --api-key-file (or point --model-url at a scripted model)")
        }
        var options = HarnessOptions()
        options.metricsListen = try DaemonOptions.apply(arguments)
        if let value = try arguments.int("max-sessions") {
            guard value > 0 else { throw UsageError("--max-sessions must be positive") }
            options.maxSessions = value
        }
        if let value = try arguments.double("lease-ttl") {
            guard value >= 1 else { throw UsageError("--lease-ttl must be at least 1 second") }
            options.leaseTTL = value
        }
        if let value = try arguments.double("poll-interval") { options.pollInterval = value }
        if let value = try arguments.double("grace") { options.grace = value }
        if let value = try arguments.int("max-turns") { options.maxTurns = max(1, value) }
        if let value = try arguments.int("context-budget") { options.contextBudgetTokens = max(1000, value) }
        if let value = try arguments.int("db-connections") {
            guard value >= 1 else { throw UsageError("--db-connections must be at least 1") }
            options.databaseConnections = value
        }
        if let value = try arguments.int("max-attempts") {
            guard value >= 1 else { throw UsageError("--max-attempts must be at least 1") }
            options.maxAttempts = value
        }
        if let value = try arguments.double("rescue-interval") {
            guard value >= 0.01 else { throw UsageError("--rescue-interval must be at least 0.01 seconds") }
            options.rescueInterval = value
        }
        if let value = try arguments.double("memory-sync-interval") {
            guard value >= 1 else { throw UsageError("--memory-sync-interval must be at least 1 second") }
            options.memorySyncInterval = value
        }
        options.eagerSandbox = arguments.has("eager-sandbox")
        options.notifyStreams = !arguments.has("no-notify-streams")
        options.addressRule = try OutboundResolver.operatorRule(allowed: arguments.value("allow-internal"))
        if let url = arguments.value("search-url") ?? environment["DROVER_SEARCH_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw UsageError("--search-url must be an http(s) URL") }
            options.searchURL = url
        }
        options.poolToken = try secret(file: arguments.value("pool-token-file"), variable: "DROVER_POOL_TOKEN") ?? ""
        options.vaultKey = try VaultKey.fromEnvironment()
        let provider: any ModelProvider = openAI
            ? OpenAIProvider(baseURL: modelURL, apiKey: apiKey ?? "")
            : AnthropicProvider(baseURL: modelURL, apiKey: apiKey ?? "")
        let harness = Harness(databaseURL: try Environment.databaseURL(), provider: provider, options: options)
        exit(try await harness.run())
    }
}
