import DroverCLI
import DroverCore
import DroverIO
import DroverPostgres
import DroverScriptedModel
import DroverStore
import Foundation

/// `make demo`: Postgres, one sandbox pool, two harnesses and the scripted model (or Claude when
/// ANTHROPIC_API_KEY is set) run a multi-turn session that writes and runs a small program in its
/// sandbox. Mid-session the harness holding the lease is SIGKILLed; the other one finishes.
struct DemoCommand: Command {
    static let name = "demo"
    static let summary = "run the full demo against DATABASE_URL (make demo does the set-up)"
    static let help = """
        usage: drover demo [--script FILE] [--kill-at-turn N]

        Migrates DATABASE_URL and starts, as child processes, a sandbox pool, two harnesses,
        `drover api` (with the web console) and `drover scripted-model` replaying FILE (default scripts/demo/turns.json; with
        ANTHROPIC_API_KEY set, Claude is used instead and no scripted model starts). It creates a
        session that writes and runs a small program, prints the event log as it grows, SIGKILLs
        the harness holding the lease when model request N starts (default 4; 2 with Claude),
        shows the lease table while the other harness takes over, and prints the outcome. Run in
        a terminal, it then prints the console's address and an operator key and keeps everything
        running until Ctrl-C; otherwise it exits. Daemon logs go to .drover/demo/.
        """
    static let options: Set<String> = ["script", "kill-at-turn"]

    static func run(_ arguments: Arguments) async throws {
        let databaseURL = try Environment.databaseURL()
        let apiKey = ProcessInfo.processInfo.environment["ANTHROPIC_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let killTurn = try arguments.int("kill-at-turn") ?? (apiKey == nil ? 4 : 2)
        guard let migrations = Migration.defaultDirectory() else { throw UsageError("no migrations folder found") }
        let binary = DroverBinary.path
        let logs = FileManager.default.currentDirectoryPath + "/.drover/demo"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let token = "demo-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)

        let pool = ConnectionPool(conninfo: databaseURL, maxConnections: 2)
        defer { pool.close() }
        let store = SessionStore(pool: pool)
        say("migrate")
        try await Migrator(pool: pool).migrate(try Migration.load(from: migrations))

        var daemons: [(String, ChildDaemon)] = []
        func start(_ name: String, _ args: [String], _ environment: [String: String]) throws -> ChildDaemon {
            let daemon = try ChildDaemon(binary: binary, args, environment: environment)
            daemons.append((name, daemon))
            return daemon
        }
        defer {
            for (_, daemon) in daemons where daemon.isRunning { daemon.signal(SIGTERM) }
            for (name, daemon) in daemons {
                try? FileManager.default.removeItem(atPath: "\(logs)/\(name).log")
                try? FileManager.default.copyItem(atPath: daemon.logPath, toPath: "\(logs)/\(name).log")
            }
        }

        say("start a sandbox pool, \(apiKey == nil ? "the scripted model, " : "")and two harnesses")
        let sandboxPool = try start("sandbox-pool", ["sandbox-pool", "--listen", "127.0.0.1:0", "--warm", "1"],
                                    ["DATABASE_URL": databaseURL, "DROVER_POOL_TOKEN": token, "ANTHROPIC_API_KEY": ""])
        Output.line("sandbox pool at \(try await sandboxPool.waitForLog("listening")["address"]?.stringValue ?? "?")")
        var harnessArgs = ["harness", "--lease-ttl", "3", "--poll-interval", "0.5", "--grace", "2"]
        var harnessEnv = ["DATABASE_URL": databaseURL, "DROVER_POOL_TOKEN": token]
        if let apiKey {
            harnessEnv["ANTHROPIC_API_KEY"] = apiKey
        } else {
            let script = arguments.value("script") ?? FileManager.default.currentDirectoryPath + "/scripts/demo/turns.json"
            let model = try start("scripted-model", ["scripted-model", "--script", script], ["ANTHROPIC_API_KEY": ""])
            let address = try await model.waitForLog("listening")["address"]?.stringValue ?? ""
            Output.line("scripted model (replays \(script); not a model) at \(address)")
            harnessArgs += ["--model-url", "http://\(address)"]
            harnessEnv["ANTHROPIC_API_KEY"] = ScriptedModelServer.placeholderKey
        }
        var harnesses: [pid_t: String] = [:]
        for name in ["harness-a", "harness-b"] {
            let harness = try start(name, harnessArgs, harnessEnv)
            _ = try await harness.waitForLog("started")
            harnesses[harness.pid] = name
        }
        Output.line("harnesses: \(harnesses.map { "\($0.value) (pid \($0.key))" }.sorted().joined(separator: ", "))")
        let api = try start("api", ["api", "--listen", "127.0.0.1:0", "--grace", "1"], ["DATABASE_URL": databaseURL])
        let consoleURL = "http://\(try await api.waitForLog("listening")["address"]?.stringValue ?? "?")/console/"
        // An operator key of the organisation the CLI's sessions belong to, for the console.
        let consoleKey = try await TenantStore(pool: pool).createKey(org: "default", operator_: true).secret
        Output.line("console at \(consoleURL)")

        say("create a session")
        let agent = try await store.createAgent(
            name: "demo", model: apiKey == nil ? "scripted" : "claude-sonnet-4-5",
            systemPrompt: "You are a careful engineer. Work in the sandbox with the tools. Be brief.")
        let environment = try await store.createEnvironment(name: "demo", configJSON: #"{"resources":{"timeout_s":60}}"#)
        let task = "Write hello.py that greets the name given on its command line, run it with the name Drover, then make the greeting friendlier and show the file."
        let session = try await store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage(task))
        Output.line("session \(session)\n")

        var after: Int64 = 0
        var killed: (pid: pid_t, name: String, epoch: Int64, at: ContinuousClock.Instant)?
        var resumedBy: String?
        let deadline = ContinuousClock.now + .seconds(apiKey == nil ? 90 : 300)
        follow: while ContinuousClock.now < deadline {
            for event in try await store.events(session, after: after, limit: 1000) {
                after = event.seq
                Output.line(Render.eventLine(event))
                if let killedAt = killed, resumedBy == nil, let epoch = event.leaseEpoch, epoch > killedAt.epoch {
                    let owner = try await store.session(session).leaseOwner?.rawValue ?? "?"
                    resumedBy = harnesses.first { owner.contains("_\($0.key)_") }?.value ?? owner
                    let seconds = (ContinuousClock.now - killedAt.at) / .seconds(1)
                    Output.line(String(format: "        ↳ %@ resumed the session at epoch %lld, %.1f s after the SIGKILL", resumedBy!, epoch, seconds))
                    Output.line(Render.leaseTable(try await LeaseView.all(in: pool)).split(separator: "\n").map { "        " + $0 }.joined(separator: "\n"))
                }
                if killed == nil, event.type == .spanModelRequestStart,
                   (try? JSONValue.parse(event.payload))?["turn"]?.intValue == killTurn {
                    let state = try await store.session(session)
                    if let owner = state.leaseOwner?.rawValue, let victim = harnesses.first(where: { owner.contains("_\($0.key)_") }) {
                        Output.line("        ↳ the model call is in flight; the lease table:")
                        Output.line(Render.leaseTable(try await LeaseView.all(in: pool)).split(separator: "\n").map { "        " + $0 }.joined(separator: "\n"))
                        kill(victim.key, SIGKILL)
                        killed = (victim.key, victim.value, state.leaseEpoch, ContinuousClock.now)
                        Output.line("        ↳ SIGKILL \(victim.value) (pid \(victim.key)), which holds the lease at epoch \(state.leaseEpoch); its lease expires in ≤ 3 s")
                    }
                }
                if event.type == .sessionStatusIdle { break follow }
            }
            try await Task.sleep(for: .milliseconds(100))
        }

        say("outcome")
        let final = try await store.session(session)
        let events = try await store.events(session, limit: 10_000)
        let epochs = Set(events.compactMap(\.leaseEpoch)).sorted()
        Output.line("""
            status        \(final.status.rawValue)
            events        \(events.count), seq 1…\(final.lastSeq) with no gaps: \(events.map(\.seq) == Array(1...Int64(max(1, events.count))))
            written under epochs \(epochs.map(String.init).joined(separator: ", "))
            killed        \(killed.map { "\($0.name) at epoch \($0.epoch)" } ?? "none")
            resumed by    \(resumedBy ?? "-")
            leases held   \(try await LeaseView.all(in: pool).count)
            logs          \(logs)/
            """)
        guard final.status == .idle, killed != nil, resumedBy != nil else {
            throw DroverError(.database, "the demo did not complete as expected; see the logs in \(logs)")
        }
        // In a terminal, leave everything running so that a person can look at it in the console.
        if isatty(0) == 1 && isatty(1) == 1 {
            say("console")
            Output.line("""
                open          \(consoleURL)
                key           \(consoleKey)   (an operator key of the default organisation)
                session       \(consoleURL)#/sessions/\(session)
                Ctrl-C stops the demo.
                """)
            _ = await TerminationSignal.wait()
        }
    }

    private static func say(_ title: String) {
        Output.line("\n== \(title)")
    }
}
