import DroverCLI
import DroverCore
import DroverIO
import DroverTestSupport
import DroverPostgres
import DroverScriptedModel
import DroverStore
import Foundation
import Synchronization

/// `drover bench work`: self-hosted environments' work queue, through a real `drover api`, and
/// a tool call's round trip through the SDK's own `EnvironmentWorker` beside the same call run in
/// a sandbox pool.
struct BenchWorkCommand: Command {
    static let name = "bench work"
    static let summary = "benchmark self-hosted work: claims/s through poll+ack, tool-call round trip with the SDK's worker"
    static let help = """
        usage: drover bench work [--items N] [--workers LIST] [--sessions N] [--sdk-workers N] [--json]

        In a scratch database on the DATABASE_URL server, with `drover api`, `drover harness`,
        `drover sandbox-pool` and the scripted model (no latency):
          claims_per_s_W        --items queued work items claimed through the API by W workers
                                (keep-alive HTTP connections, each polling without blocking and
                                acknowledging what it got), for each W in --workers (default 1,4,16)
          self_hosted_call_*    agent.tool_use committed → the SDK's EnvironmentWorker's
                                user.tool_result committed (bash `true`, beta_agent_toolset_20260401;
                                --sdk-workers Python worker processes, default 4), p50/p99 over
                                --sessions sessions of 10 calls each (default 4); the first call of
                                each session, which waits for a worker to claim the session, apart
          pool_call_*           the same calls in a cloud environment: agent.tool_use committed →
                                agent.tool_result committed, through the sandbox pool

        The SDK's worker comes from the project's venv (.drover/sdk, `make test` installs it) and
        runs Tests/sdk/self_hosted.py; run from the repository's root.

          --json        one JSON object instead of a table
        """
    static let options: Set<String> = ["items", "workers", "sessions", "sdk-workers"]
    static let flags: Set<String> = ["json"]

    static let calls = 10

    static func run(_ arguments: Arguments) async throws {
        let items = try arguments.int("items") ?? 2000
        let sessions = try arguments.int("sessions") ?? 4
        let sdkWorkers = try arguments.int("sdk-workers") ?? 4
        let workerCounts = try (arguments.value("workers") ?? "1,4,16").split(separator: ",").map {
            guard let n = Int($0), n > 0 else { throw UsageError("--workers takes a list like 1,4,16") }
            return n
        }
        let root = FileManager.default.currentDirectoryPath
        let python = root + "/.drover/sdk/bin/python"
        let program = root + "/Tests/sdk/self_hosted.py"
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: program) else {
            throw UsageError("run from the repository's root after `make test` (needs .drover/sdk and Tests/sdk/self_hosted.py)")
        }
        let database = try await BenchDatabase.create()
        let sql = ConnectionPool(conninfo: database.conninfo, maxConnections: 4)
        let binary = DroverBinary.path
        let token = "bench-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let bash: JSONValue = ["content": [["type": "tool_use", "name": "bash", "input": ["command": "true"]]]]
        let model = try ScriptedModelServer(
            script: try ModelScript.load(["turns": .array(Array(repeating: bash, count: calls) + [["content": [["type": "text", "text": "ok"]]]])]),
            host: "127.0.0.1", port: 0, log: Log(component: "scripted-model", minimum: .error))
        model.start()
        var daemons: [ChildDaemon] = []
        var workers: [ChildDaemon] = []
        let folder = NSTemporaryDirectory() + "drover-bench-work-\(UInt64.random(in: 0...UInt64.max))"
        var results: [BenchResult] = []
        func stop() async {
            for worker in workers { kill(-worker.pid, SIGKILL) }
            for daemon in daemons.reversed() { daemon.signal(SIGTERM) }
            for daemon in daemons { _ = await daemon.wait(timeout: 15) }
            model.stop()
            sql.close()
            try? FileManager.default.removeItem(atPath: folder)
        }
        try await BenchDatabase.run(database, stop: stop) {
            let environment = ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token, "ANTHROPIC_API_KEY": ScriptedModelServer.placeholderKey]
            let api = try ChildDaemon(binary: binary, ["api", "--listen", "127.0.0.1:0", "--grace", "1", "--db-connections", "8",
                                                       "--max-connections-per-client", "1024"], environment: environment)
            daemons.append(api)
            guard let address = try await api.waitForLog("listening")["address"]?.stringValue else { throw DroverError(.invalidArgument, "no address") }
            let pool = try ChildDaemon(binary: binary, ["sandbox-pool", "--listen", "127.0.0.1:0", "--warm", "4", "--grace", "1"], environment: environment)
            daemons.append(pool)
            _ = try await pool.waitForLog("listening")
            let harness = try ChildDaemon(binary: binary, ["harness", "--model-url", "http://127.0.0.1:\(model.listener.port)", "--grace", "1"],
                                          environment: environment)
            daemons.append(harness)
            _ = try await harness.waitForLog("started")
            let store = SessionStore(pool: sql)
            let queue = WorkQueue(pool: sql)
            let agent = try await store.createAgent(name: "bench", model: "scripted")

            for count in workerCounts {
                let env = try await selfHostedEnvironment(store: store, sql: sql)
                try await sql.query(
                    "SELECT count(drover.create_session($1, $2, NULL, 0)) FROM generate_series(1, $3)", [agent, env, items])
                let key = try await queue.createEnvironmentKey(environment: env, org: nil).secret
                let rate = try claims(address: address, environment: env, key: key, workers: count, expected: items)
                results.append(BenchResult(name: "claims_per_s_\(count)", value: rate, unit: "items/s"))
                Progress.say(String(format: "%d items, %d worker(s): %.0f claims/s (poll + ack)", items, count, rate))
            }

            let env = try await selfHostedEnvironment(store: store, sql: sql)
            let key = try await queue.createEnvironmentKey(environment: env, org: nil).secret
            for index in 1...sdkWorkers {
                let workdir = folder + "/w\(index)"
                try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
                let worker = try ChildDaemon(binary: "/usr/bin/setsid", [python, program, "worker", env, key, "bench-w\(index)", workdir],
                                             environment: ["DROVER_API_URL": "http://\(address)"])
                workers.append(worker)
                _ = try await worker.waitForLog("worker started")
            }
            let (first, steady) = try await roundTrips(store: store, sql: sql, agent: agent, environment: env, sessions: sessions)
            results += [
                BenchResult(name: "self_hosted_call_p50_ms", value: steady.percentile(50), unit: "ms"),
                BenchResult(name: "self_hosted_call_p99_ms", value: steady.percentile(99), unit: "ms"),
                BenchResult(name: "self_hosted_first_call_p50_ms", value: first.percentile(50), unit: "ms (claim included)"),
            ]
            Progress.say(String(format: "SDK worker: tool_use → tool_result p50 %.1f ms, p99 %.1f ms; first call p50 %.0f ms",
                                steady.percentile(50), steady.percentile(99), first.percentile(50)))
            let cloud = try await store.createEnvironment(name: "bench-pool")
            let (poolFirst, poolSteady) = try await roundTrips(store: store, sql: sql, agent: agent, environment: cloud, sessions: sessions)
            results += [
                BenchResult(name: "pool_call_p50_ms", value: poolSteady.percentile(50), unit: "ms"),
                BenchResult(name: "pool_call_p99_ms", value: poolSteady.percentile(99), unit: "ms"),
                BenchResult(name: "pool_first_call_p50_ms", value: poolFirst.percentile(50), unit: "ms (provision included)"),
            ]
            Progress.say(String(format: "sandbox pool: tool_use → tool_result p50 %.1f ms, p99 %.1f ms", poolSteady.percentile(50), poolSteady.percentile(99)))
        }
        BenchReport.print("drover bench work", results, json: arguments.has("json"), extra: [
            ("benchmark", "work"), ("cores", String(ProcessInfo.processInfo.activeProcessorCount)), ("items", String(items)),
            ("sessions", String(sessions)), ("calls_per_session", String(calls)), ("sdk_workers", String(sdkWorkers)),
        ])
    }

    static func selfHostedEnvironment(store: SessionStore, sql: ConnectionPool) async throws -> String {
        let env = try await store.createEnvironment(name: "bench-self-hosted")
        try await sql.query("UPDATE drover.environments SET kind = 'self_hosted' WHERE id = $1", [env])
        return env
    }

    /// Claims through `GET …/work/poll` + `POST …/ack` by `workers` connections until the queue is
    /// empty; items per second.
    static func claims(address: String, environment: String, key: String, workers: Int, expected: Int) throws -> Double {
        let connections = try (0..<workers).map { _ in try HTTPConnection.connect(address) }
        defer { connections.forEach { $0.close() } }
        let claimed = Mutex(0)
        let failures = Mutex(0)
        let headers = [("authorization", "Bearer \(key)")]
        let started = ContinuousClock.now
        let group = DispatchGroup()
        for connection in connections {
            group.enter()
            Thread {
                defer { group.leave() }
                while true {
                    guard let poll = try? connection.request("GET", "/v1/environments/\(environment)/work/poll", headers: headers), poll.status == 200,
                          let item = try? JSONValue.parse(poll.body) else {
                        failures.withLock { $0 += 1 }
                        return
                    }
                    guard let id = item["id"]?.stringValue else { return }  // null: the queue is empty
                    guard let ack = try? connection.request("POST", "/v1/environments/\(environment)/work/\(id)/ack", headers: headers),
                          ack.status == 200 else {
                        failures.withLock { $0 += 1 }
                        return
                    }
                    claimed.withLock { $0 += 1 }
                }
            }.start()
        }
        group.wait()
        let elapsed = (ContinuousClock.now - started).seconds
        guard failures.withLock({ $0 }) == 0, claimed.withLock({ $0 }) == expected else {
            throw DroverError(.invalidArgument, "claimed \(claimed.withLock { $0 }) of \(expected), \(failures.withLock { $0 }) failures")
        }
        return Double(expected) / elapsed
    }

    /// Runs `sessions` sessions of `calls` bash calls at once and reads each call's round trip
    /// from the log (both events' commit times, by the database's clock): the first call of each
    /// session apart from the rest.
    static func roundTrips(store: SessionStore, sql: ConnectionPool, agent: String, environment: String, sessions: Int) async throws
        -> (first: Latencies, steady: Latencies) {
        var ids: [String] = []
        for _ in 0..<sessions {
            ids.append(try await store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage("go")).rawValue)
        }
        let deadline = ContinuousClock.now + .seconds(300)
        while true {
            let idle: Int = try await sql.query(
                """
                SELECT count(*)::int FROM drover.sessions s
                 WHERE s.id = ANY($1) AND EXISTS (SELECT 1 FROM drover.events e WHERE e.session_id = s.id AND e.type = 'session.status_idle')
                """, [ids])[0].decode(0)
            if idle == sessions { break }
            guard ContinuousClock.now < deadline else { throw DroverError(.database, "\(sessions - idle) sessions never finished") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let rows = try await sql.query(
            """
            SELECT extract(epoch FROM r.created_at - u.created_at)::float8,
                   u.seq = (SELECT min(f.seq) FROM drover.events f WHERE f.session_id = u.session_id AND f.type = 'agent.tool_use'),
                   r.payload->>'is_error'
              FROM drover.events u
              JOIN drover.events r ON r.session_id = u.session_id AND r.type IN ('user.tool_result', 'agent.tool_result')
                                  AND coalesce(r.payload->>'drover_tool_use_id', r.payload->>'tool_use_id') = u.payload->>'id'
             WHERE u.type = 'agent.tool_use' AND u.session_id = ANY($1)
            """, [ids])
        var first = Latencies()
        var steady = Latencies()
        for row in rows {
            guard try row.decodeIfPresent(2, as: String.self) != "true" else { throw DroverError(.invalidArgument, "a call failed") }
            let seconds: Double = try row.decode(0)
            if try row.decode(1, as: Bool.self) { first.record(seconds) } else { steady.record(seconds) }
        }
        guard first.samples.count + steady.samples.count == sessions * calls else {
            throw DroverError(.invalidArgument, "\(first.samples.count + steady.samples.count) of \(sessions * calls) calls answered")
        }
        return (first, steady)
    }
}
