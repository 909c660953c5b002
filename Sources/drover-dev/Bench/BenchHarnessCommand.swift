import DroverCLI
import DroverCore
import DroverIO
import DroverModel
import DroverScriptedModel
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// `drover bench harness`: the harness measured end to end against real processes: a scratch
/// database, a sandbox pool, harnesses, and the scripted model at a fixed latency.
struct BenchHarnessCommand: Command {
    static let name = "bench harness"
    static let summary = "benchmark event→request latency, TTFT lazy vs eager, throughput, crash resume"
    static let help = """
        usage: drover bench harness [--samples N] [--sessions LIST] [--harnesses LIST] [--json]

        In a scratch database on the DATABASE_URL server, with `drover sandbox-pool` and
        `drover harness` processes and the scripted model (fixed latency):
          (a) user event committed → model request sent, p50/p99 (one idle harness woken by NOTIFY)
          (b) time to first token, lazy vs --eager-sandbox, p50/p95 and their ratio; the sandbox's
              provisioning includes preparing a workspace: --setup SCRIPT, by default a git
              repository of 1,000 small files, committed
          (c) sessions completed per second, for each count in --sessions (default 100,1000) across
              each harness count in --harnesses (default 1,2,4,8), with the peak number of client
              backends on the server meanwhile (each harness holds at most 4 connections)
          (d) SIGKILL of the harness holding a lease mid-model-call → session resumed by another,
              p50/max over at least 20 trials, at the default lease TTL of 30 s (the dead
              harness's liveness lock is freed at once, so the TTL is not waited out)

          --samples N   samples for (a) and (b) (default 100), and SIGKILL trials / 5 for (d)
                        (at least 20)
          --json        one JSON object instead of a table
        """
    static let options: Set<String> = ["samples", "sessions", "harnesses", "setup"]
    static let flags: Set<String> = ["json"]

    /// The default workspace preparation: a git repository of 1,000 small source files, committed
    /// (about what cloning a small repository costs).
    static let defaultSetup = """
        git init -q repo && cd repo && for d in $(seq 1 20); do mkdir -p src/m$d; for f in $(seq 1 50); do \
        printf 'def f%s():\\n    return %s\\n' $f $f > src/m$d/f$f.py; done; done && git add -A && \
        git -c user.email=bench@drover -c user.name=bench commit -qm init
        """

    static func run(_ arguments: Arguments) async throws {
        let samples = try arguments.int("samples") ?? 100
        func list(_ name: String, _ fallback: String) throws -> [Int] {
            try (arguments.value(name) ?? fallback).split(separator: ",").map {
                guard let n = Int($0), n > 0 else { throw UsageError("--\(name) takes a list like \(fallback)") }
                return n
            }
        }
        let sessionCounts = try list("sessions", "100,1000")
        let harnessCounts = try list("harnesses", "1,2,4,8")
        let database = try await BenchDatabase.create()
        let bench = try await HarnessBench(database: database, setup: arguments.value("setup") ?? defaultSetup)
        var results: [BenchResult] = []
        try await BenchDatabase.run(database, stop: bench.stop) {
            let latency = try await bench.eventToRequest(samples: samples)
            results += [BenchResult(name: "event_to_request_p50_ms", value: latency.percentile(50), unit: "ms"),
                        BenchResult(name: "event_to_request_p99_ms", value: latency.percentile(99), unit: "ms")]
            let lazy = try await bench.timeToFirstToken(samples: samples, eager: false)
            let eager = try await bench.timeToFirstToken(samples: samples, eager: true)
            results += [
                BenchResult(name: "ttft_lazy_p50_ms", value: lazy.percentile(50), unit: "ms"),
                BenchResult(name: "ttft_lazy_p95_ms", value: lazy.percentile(95), unit: "ms"),
                BenchResult(name: "ttft_eager_p50_ms", value: eager.percentile(50), unit: "ms"),
                BenchResult(name: "ttft_eager_p95_ms", value: eager.percentile(95), unit: "ms"),
                BenchResult(name: "ttft_ratio_p50", value: lazy.percentile(50) / eager.percentile(50), unit: "lazy/eager"),
                BenchResult(name: "ttft_ratio_p95", value: lazy.percentile(95) / eager.percentile(95), unit: "lazy/eager"),
            ]
            for harnesses in harnessCounts {
                for sessions in sessionCounts {
                    let (rate, backends) = try await bench.throughput(sessions: sessions, harnesses: harnesses)
                    results.append(BenchResult(name: "sessions_per_s_\(sessions)_on_\(harnesses)", value: rate, unit: "sessions/s"))
                    results.append(BenchResult(name: "peak_backends_\(sessions)_on_\(harnesses)", value: Double(backends), unit: "client backends"))
                }
            }
            let resume = try await bench.killResume(trials: max(20, samples / 5))
            results += [BenchResult(name: "sigkill_resume_p50_s", value: resume.percentile(50) / 1000, unit: "s (TTL 30 s)"),
                        BenchResult(name: "sigkill_resume_max_s", value: resume.percentile(100) / 1000, unit: "s (TTL 30 s)"),
                        BenchResult(name: "sigkill_resume_trials", value: Double(resume.samples.count), unit: "trials")]
        }
        BenchReport.print("drover bench harness", results, json: arguments.has("json"), extra: [
            ("benchmark", "harness"), ("cores", String(ProcessInfo.processInfo.activeProcessorCount)),
            ("model", "scripted, 20 ms to first token"), ("samples", String(samples)),
            ("workspace_setup", arguments.value("setup") == nil ? "git repository, 1,000 files" : "custom"),
        ])
    }
}

/// The processes and helpers behind `drover bench harness`.
final class HarnessBench: @unchecked Sendable {
    let database: ScratchDatabase
    let setup: String
    let sql: ConnectionPool
    let store: SessionStore
    let model: ScriptedModelServer
    let pool: ChildDaemon
    let token = "bench-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    let binary = DroverBinary.path
    var harnesses: [ChildDaemon] = []

    init(database: ScratchDatabase, setup: String) async throws {
        self.database = database
        self.setup = setup
        sql = ConnectionPool(conninfo: database.conninfo, maxConnections: 4)
        store = SessionStore(pool: sql)
        model = try ScriptedModelServer(
            script: try ModelScript.load(["turns": [["content": [["type": "text", "text": "ok"]], "latency_ms": 20]]]),
            host: "127.0.0.1", port: 0, log: Log(component: "scripted-model", minimum: .error))
        model.start()
        pool = try ChildDaemon(binary: binary, ["sandbox-pool", "--listen", "127.0.0.1:0", "--warm", "4", "--capacity", "512", "--grace", "1"],
                               environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token])
        _ = try await pool.waitForLog("listening")
    }

    func startHarnesses(_ count: Int, _ extra: [String] = []) async throws {
        await stopHarnesses()
        for _ in 0..<count {
            let harness = try ChildDaemon(
                binary: binary,
                ["harness", "--model-url", "http://127.0.0.1:\(model.listener.port)", "--max-sessions", "500", "--grace", "1"] + extra,
                environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token, "ANTHROPIC_API_KEY": ScriptedModelServer.placeholderKey])
            _ = try await harness.waitForLog("started")
            harnesses.append(harness)
        }
    }

    func stopHarnesses() async {
        for harness in harnesses { harness.signal(SIGTERM) }
        for harness in harnesses { _ = await harness.wait(timeout: 15) }
        harnesses = []
    }

    func stop() async {
        await stopHarnesses()
        pool.signal(SIGTERM)
        _ = await pool.wait(timeout: 15)
        model.stop()
        sql.close()
    }

    private func agentAndEnvironment(setup: Bool) async throws -> (String, String) {
        let agent = try await store.createAgent(name: "bench", model: "scripted")
        let config = setup ? JSONValue.object(["resources": ["setup": .string(self.setup)]]).text : "{}"
        return (agent, try await store.createEnvironment(name: "bench", configJSON: config))
    }

    private func waitIdle(_ session: SessionID, timeout: Double = 30) async throws -> [Event] {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            let events = try await store.events(session, limit: 1000)
            if events.contains(where: { $0.type == .sessionStatusIdle }) { return events }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw DroverError(.database, "session \(session) did not go idle")
    }

    /// (a) From the user event's commit (its created_at, the transaction's start: conservative)
    /// to the scripted server receiving the model request.
    func eventToRequest(samples: Int) async throws -> Latencies {
        try await startHarnesses(1, ["--poll-interval", "30"])
        let (agent, environment) = try await agentAndEnvironment(setup: false)
        var latencies = Latencies()
        for index in 0..<(samples + 5) {
            let session = try await store.createSession(agent: agent, environment: environment)
            try await Task.sleep(for: .milliseconds(5))
            let sent = try await store.send(session, type: .userMessage, payload: JSONText.userMessage("go"))
            _ = try await waitIdle(session)
            let received = try await receivedAt(conversation: session.rawValue)
            if index >= 5 { latencies.record(received - sent.createdAt.timeIntervalSince1970) }
        }
        Progress.say("event → request p50 \(String(format: "%.3f", latencies.percentile(50))) ms")
        return latencies
    }

    private func receivedAt(conversation: String) async throws -> Double {
        let (_, body) = try await HTTPClient().fetch(HTTPRequest(url: "http://127.0.0.1:\(model.listener.port)/_scripted/requests", method: "GET"))
        guard case .array(let requests)? = try JSONValue.parse(body)["requests"],
              let request = requests.last(where: { $0["conversation"]?.stringValue == conversation }),
              let at = request["received_at"]?.doubleValue else { throw DroverError(.notFound, "no request seen") }
        return at
    }

    /// (b) From the user event's commit to the first token reaching the harness. The environment
    /// prepares a workspace at provision; an eager harness pays that before the first model call,
    /// a lazy one only when a tool call needs the sandbox (the first turn here needs none).
    func timeToFirstToken(samples: Int, eager: Bool) async throws -> Latencies {
        try await startHarnesses(1, eager ? ["--eager-sandbox"] : [])
        let (agent, environment) = try await agentAndEnvironment(setup: true)
        var latencies = Latencies()
        for index in 0..<(samples + 3) {
            let session = try await store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage("go"))
            let events = try await waitIdle(session)
            guard let message = events.first(where: { $0.type == .userMessage }),
                  let start = events.first(where: { $0.type == .spanModelRequestStart }),
                  let end = events.first(where: { $0.type == .spanModelRequestEnd }),
                  let ttft = (try? JSONValue.parse(end.payload))?["ttft_ms"]?.doubleValue else { continue }
            if index >= 3 { latencies.record(start.createdAt.timeIntervalSince(message.createdAt) + ttft / 1000) }
        }
        Progress.say("ttft \(eager ? "eager" : "lazy") p50 \(String(format: "%.3f", latencies.percentile(50))) ms")
        return latencies
    }

    /// (c) Queues `sessions` at once and times until every one is idle; samples the server's
    /// client backends meanwhile and returns the peak.
    func throughput(sessions: Int, harnesses: Int) async throws -> (rate: Double, peakBackends: Int) {
        try await startHarnesses(harnesses, ["--poll-interval", "0.2"])
        let (agent, environment) = try await agentAndEnvironment(setup: false)
        let peak = Mutex(0)
        let conninfo = database.conninfo
        let sampling = Task {
            let sampler = ConnectionPool(conninfo: conninfo, maxConnections: 1)
            defer { sampler.close() }
            while !Task.isCancelled {
                if let count: Int = try? await sampler.query(
                    "SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend'")[0].decode(0) {
                    peak.withLock { $0 = max($0, count) }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        defer { sampling.cancel() }
        let started = ContinuousClock.now
        try await sql.query(
            "SELECT count(drover.create_session($1, $2, '{\"content\":[{\"type\":\"text\",\"text\":\"go\"}]}', 0)) FROM generate_series(1, $3)",
            [agent, environment, sessions])
        while true {
            let remaining: Int = try await sql.query(
                "SELECT count(*) FROM drover.sessions WHERE agent_id = $1 AND status <> 'idle'", [agent])[0].decode(0)
            if remaining == 0 { break }
            if ContinuousClock.now - started > .seconds(300) { throw DroverError(.database, "\(remaining) sessions never finished") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let rate = Double(sessions) / (ContinuousClock.now - started).seconds
        Progress.say("\(sessions) sessions on \(harnesses) harness(es): \(Int(rate))/s, peak \(peak.withLock { $0 }) backends")
        return (rate, peak.withLock { $0 })
    }

    /// (d) SIGKILL the holder during a slow model call; time until another harness holds the
    /// lease (a new epoch), at the default TTL.
    func killResume(trials: Int) async throws -> Latencies {
        model.stop()
        let slow = try ScriptedModelServer(
            script: try ModelScript.load(["turns": [["content": [["type": "text", "text": "slow"]], "latency_ms": 1500]]]),
            host: "127.0.0.1", port: model.listener.port, log: Log(component: "scripted-model", minimum: .error))
        slow.start()
        defer { slow.stop() }
        try await startHarnesses(2, ["--lease-ttl", "30"])
        let (agent, environment) = try await agentAndEnvironment(setup: false)
        var latencies = Latencies()
        for _ in 0..<trials {
            let session = try await store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage("go"))
            var owner: String?
            while owner == nil {
                let events = try await store.events(session, types: [.spanModelRequestStart])
                if !events.isEmpty { owner = try await store.session(session).leaseOwner?.rawValue }
                try await Task.sleep(for: .milliseconds(5))
            }
            guard let index = harnesses.firstIndex(where: { owner!.contains("_\($0.pid)_") }) else { continue }
            let epoch = try await store.session(session).leaseEpoch
            harnesses[index].signal(SIGKILL)
            let killed = ContinuousClock.now
            while try await store.session(session).leaseEpoch == epoch {
                try await Task.sleep(for: .milliseconds(5))
            }
            latencies.record((ContinuousClock.now - killed).seconds)
            _ = await harnesses[index].wait(timeout: 5)
            let replacement = try ChildDaemon(
                binary: binary, ["harness", "--model-url", "http://127.0.0.1:\(model.listener.port)", "--lease-ttl", "30"],
                environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token, "ANTHROPIC_API_KEY": ScriptedModelServer.placeholderKey])
            _ = try await replacement.waitForLog("started")
            harnesses[index] = replacement
            _ = try await waitIdle(session)
        }
        Progress.say("SIGKILL → resumed p50 \(String(format: "%.2f", latencies.percentile(50) / 1000)) s")
        return latencies
    }
}
