import DroverCLI
import DroverCore
import DroverIO
import DroverPostgres
import DroverScriptedModel
import DroverStore
import Foundation

/// `drover bench burst`: a burst of sessions larger than the fleet's sandboxes, each with one
/// tool call, created at once; reports the time to drain against the ideal (calls ÷ sandboxes ×
/// call time) and every error result and `session.error` (both must be 0: overload is queued).
struct BenchBurstCommand: Command {
    static let name = "bench burst"
    static let summary = "benchmark a burst of sessions beyond the fleet's sandboxes: time to drain, errors"
    static let help = """
        usage: drover bench burst [--sessions N] [--harnesses N] [--pools N] [--capacity N]
                                  [--call-seconds S] [--json]

        In a scratch database on the DATABASE_URL server: the scripted model, --pools sandbox
        pools (default 2) of --capacity sandboxes (default 32) and --harnesses harnesses (default
        4). --sessions sessions (default 1000) are created in one statement, each asking for one
        bash call that sleeps --call-seconds (default 0.5). Prints the time from the burst to the
        last session idle, the ideal (sessions ÷ all sandboxes × call time) and their ratio, the
        end_turn count, error tool results and session.error events, as a table and JSON.
        """
    static let options: Set<String> = ["sessions", "harnesses", "pools", "capacity", "call-seconds"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let sessions = try arguments.int("sessions") ?? 1000
        let harnessCount = try arguments.int("harnesses") ?? 4
        let poolCount = try arguments.int("pools") ?? 2
        let capacity = try arguments.int("capacity") ?? 32
        let callSeconds = try arguments.double("call-seconds") ?? 0.5
        guard sessions > 0, harnessCount > 0, poolCount > 0, capacity > 0, callSeconds >= 0 else {
            throw UsageError("every count must be positive")
        }
        let database = try await BenchDatabase.create(prefix: "drover_burst")
        let sql = ConnectionPool(conninfo: database.conninfo, maxConnections: 2)
        let binary = DroverBinary.path
        let token = "burst-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let model = try ScriptedModelServer(
            script: try ModelScript.load(["turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": .string("sleep \(callSeconds)")]]]],
                ["content": [["type": "text", "text": "done"]]],
            ]]),
            host: "127.0.0.1", port: 0, log: Log(component: "scripted-model", minimum: .error))
        model.start()
        var daemons: [ChildDaemon] = []
        func stop() async {
            for daemon in daemons { daemon.signal(SIGTERM) }
            for daemon in daemons { _ = await daemon.wait(timeout: 20) }
            model.stop()
            sql.close()
        }
        var results: [BenchResult] = []
        try await BenchDatabase.run(database, stop: stop) {
            for _ in 0..<poolCount {
                let pool = try ChildDaemon(
                    binary: binary, ["sandbox-pool", "--listen", "127.0.0.1:0", "--warm", "4", "--capacity", String(capacity), "--grace", "1"],
                    environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token])
                daemons.append(pool)
                _ = try await pool.waitForLog("listening")
            }
            for _ in 0..<harnessCount {
                let harness = try ChildDaemon(
                    binary: binary, ["harness", "--model-url", "http://127.0.0.1:\(model.listener.port)", "--grace", "1"],
                    environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token, "ANTHROPIC_API_KEY": ScriptedModelServer.placeholderKey])
                daemons.append(harness)
                _ = try await harness.waitForLog("started")
            }
            let store = SessionStore(pool: sql)
            let agent = try await store.createAgent(name: "burst", model: "scripted")
            let environment = try await store.createEnvironment(name: "burst")
            let started = ContinuousClock.now
            try await sql.query(
                "SELECT count(drover.create_session($1, $2, $3, 0)) FROM generate_series(1, $4)",
                [agent, environment, JSONText.userMessage("go"), sessions])
            var lastReport = ContinuousClock.now
            while true {
                let open: Int = try await sql.query("SELECT count(*) FROM drover.sessions WHERE status <> 'idle'")[0].decode(0)
                if open == 0 { break }
                if ContinuousClock.now - lastReport > .seconds(2) {
                    FileHandle.standardError.write(Data("burst: \(sessions - open) of \(sessions) sessions idle\n".utf8))
                    lastReport = .now
                }
                if ContinuousClock.now - started > .seconds(Double(sessions) * max(callSeconds, 0.05) + 600) {
                    throw DroverError(.invalidArgument, "\(open) sessions still open; giving up")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let drained = (ContinuousClock.now - started).seconds
            // Where a session's time went (p50 over the burst), by its events' commit times: in
            // the queue until a harness claimed it, the first model call, its tool call (waiting for
            // a sandbox, the provision and the call), and the rest of its turn.
            let phases = try await sql.query("""
                WITH t AS (
                    SELECT min(created_at) FILTER (WHERE type = 'user.message') AS sent,
                           min(created_at) FILTER (WHERE type = 'span.model_request_start') AS claimed,
                           min(created_at) FILTER (WHERE type = 'agent.tool_use') AS asked,
                           min(created_at) FILTER (WHERE type = 'agent.tool_result') AS answered,
                           max(created_at) FILTER (WHERE type = 'session.status_idle') AS ended
                      FROM drover.events GROUP BY session_id)
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM claimed - sent))::float8,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM asked - claimed))::float8,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM answered - asked))::float8,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ended - answered))::float8
                  FROM t
                """)[0]
            let phaseNames = ["queued", "first_model_call", "tool_call", "rest_of_turn"]
            let phaseValues: [Double] = try (0..<4).map { try phases.decode($0) }
            let ideal = Double(sessions) / Double(poolCount * capacity) * callSeconds
            func count(_ sqlText: String) async throws -> Double { Double(try await sql.query(sqlText)[0].decode(0) as Int) }
            results = [
                BenchResult(name: "drain_s", value: drained, unit: "s"),
            ] + zip(phaseNames, phaseValues).map { BenchResult(name: "\($0)_p50_s", value: $1, unit: "s (a session's)") } + [
                BenchResult(name: "ideal_s", value: ideal, unit: "s (calls ÷ sandboxes × call time)"),
                BenchResult(name: "drain_over_ideal", value: ideal > 0 ? drained / ideal : 0, unit: "x (target ≤ 1.5)"),
                BenchResult(name: "end_turn", value: try await count(
                    "SELECT count(*) FROM drover.events WHERE type = 'session.status_idle' AND payload->'stop_reason'->>'type' = 'end_turn'"),
                            unit: "sessions"),
                BenchResult(name: "error_results", value: try await count(
                    "SELECT count(*) FROM drover.events WHERE type = 'agent.tool_result' AND (payload->>'is_error')::boolean"), unit: "results"),
                BenchResult(name: "session_errors", value: try await count("SELECT count(*) FROM drover.events WHERE type = 'session.error'"),
                            unit: "events"),
            ]
        }
        BenchReport.print("drover bench burst", results, json: arguments.has("json"), extra: [
            ("benchmark", "burst"), ("cores", String(ProcessInfo.processInfo.activeProcessorCount)), ("sessions", String(sessions)),
            ("harnesses", String(harnessCount)), ("pools", "\(poolCount) × \(capacity) sandboxes"), ("call", "bash sleep \(callSeconds) s"),
        ])
    }
}
