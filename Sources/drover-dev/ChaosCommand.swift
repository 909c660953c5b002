import DroverCLI
import DroverCore
import DroverIO
import DroverModel
import DroverScriptedModel
import DroverPostgres
import DroverSandbox
import DroverStore
import DroverTestSupport
import Foundation
import Synchronization

/// `make chaos`: many sessions with visible side effects run while harnesses are SIGKILLed and
/// restarted, one is SIGSTOPped past its lease, a sandbox pool is SIGKILLed, Postgres is
/// restarted, and hostile clients and tenants attack every daemon (`HostilePhase`). Then `verify`
/// must pass, every side effect must have happened exactly once, and no daemon may have died or
/// let hostile input through.
struct ChaosCommand: Command {
    static let name = "chaos"
    static let summary = "run sessions under kills, pauses and restarts, then verify"
    static let help = """
        usage: drover chaos [--seed N] [--sessions N] [--harnesses N] [--timeout SECONDS]

        In a scratch database on the DATABASE_URL server: the scripted model, two sandbox pools
        and --harnesses harnesses (default 4, lease TTL 2 s) run --sessions sessions (default 200)
        whose tool calls each append their call_id to effects.log in the workspace. Meanwhile,
        with seeded randomness: a random harness is SIGKILLed (and restarted) every 1.5-3 s, one
        is SIGSTOPped past its lease and then SIGCONTed, one sandbox pool is SIGKILLed, and
        Postgres is restarted once (with $DROVER_PG_RESTART, which `make chaos` sets). At the end
        every session must be idle, `drover verify` must pass, and every effects.log on a live
        sandbox must name each call that ran there exactly once (calls whose sandbox died must
        say so in the log).

        All the while a hostile phase runs: malformed HTTP (negative and signed chunk sizes, endless
        extensions and trailers, smuggling shapes, oversized heads) at `drover api` and the scripted
        model, malformed lines at the pools, floods of 300 silent connections at each of them
        with a probe that must still be served, and hostile sessions (a tenth, at least 4) whose
        agent's MCP servers answer endlessly or with a leaky error body and whose tool calls write
        into FIFOs. Every daemon must survive, every malformed input must get a coded answer, and
        the hostile sessions' logs must hold bounded errors only.

        Then a burst beyond capacity: the pools make way for one of capacity 8, and half as many
        sessions as --sessions (at least 40) are queued at once, each with a tool call, while a
        harness holding leases is SIGKILLed. Calls must wait their turn (the pool reports them in
        line), every burst session must end its turn, no call may fail, and `verify` must pass.
        Prints the seed; exits 1 on any failure. --seed replays a run.
        """
    static let options: Set<String> = ["seed", "sessions", "harnesses", "timeout"]

    static func run(_ arguments: Arguments) async throws {
        let seed = try arguments.value("seed").map { guard let n = UInt64($0) else { throw UsageError("--seed takes a number") }; return n }
            ?? UInt64.random(in: 0...UInt64.max)
        let sessions = try arguments.int("sessions") ?? 200
        let harnessCount = try arguments.int("harnesses") ?? 4
        let timeout = try arguments.double("timeout") ?? 240
        let restartCommand = ProcessInfo.processInfo.environment["DROVER_PG_RESTART"].flatMap { $0.isEmpty ? nil : $0 }
        Output.line("chaos seed \(seed) (replay: drover chaos --seed \(seed) --sessions \(sessions))")
        guard let directory = Migration.defaultDirectory() else { throw UsageError("no migrations folder found") }
        let database = try await ScratchDatabase.create(
            on: try Environment.databaseURL(), prefix: "drover_chaos", migrations: try Migration.load(from: directory))
        let run = try await ChaosRun(database: database, seed: seed, harnesses: harnessCount)
        var failures: [String] = []
        do {
            failures = try await run.run(sessions: sessions, timeout: timeout, restartPostgres: restartCommand)
        } catch {
            failures = ["the run itself failed: \(String(reflecting: error))"]
        }
        await run.stop()
        if failures.isEmpty { try? await database.drop() }
        for failure in failures { Output.line("FAIL \(failure)") }
        Output.line(failures.isEmpty
            ? "chaos: passed (seed \(seed), \(sessions) sessions)"
            : "chaos: FAILED (seed \(seed)); the database \(database.name) is kept for inspection")
        if !failures.isEmpty { exit(1) }
    }
}

/// The processes and the fault schedule of one chaos run.
final class ChaosRun: @unchecked Sendable {
    let database: ScratchDatabase
    let sql: ConnectionPool
    let binary = DroverBinary.path
    let token = "chaos-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    let root = NSTemporaryDirectory() + "drover-chaos-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    var random: SeededRandom
    var model: ChildDaemon!
    var modelAddress = ""
    var pools: [ChildDaemon] = []
    var poolAddresses: [String] = []
    var harnesses: [ChildDaemon] = []
    var api: ChildDaemon!
    var apiAddress = ""
    let hostile: HostilePhase
    var hostileAgent = ""
    var hostileSessions = 0
    var agent = ""
    var environment = ""
    let harnessCount: Int

    init(database: ScratchDatabase, seed: UInt64, harnesses: Int) async throws {
        self.database = database
        self.random = SeededRandom(seed: seed)
        self.harnessCount = harnesses
        sql = ConnectionPool(conninfo: database.conninfo, maxConnections: 2, connectTimeout: 60)
        hostile = try HostilePhase()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// Each session: five model turns (with latency, so harnesses die mid-call) and five tool
    /// calls (two in parallel, some slow, so harnesses and a pool die mid-call), each appending
    /// its own call_id to effects.log.
    static let script: JSONValue = ["turns": [
        ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo {{tool_use_id}} >> effects.log; sleep 0.5"]]], "latency_ms": 300],
        ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo {{tool_use_id}} >> effects.log; sleep 1"]],
                     ["type": "tool_use", "name": "bash", "input": ["command": "echo {{tool_use_id}} >> effects.log"]]], "latency_ms": 600],
        ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo {{tool_use_id}} >> effects.log; sleep 0.3"]]], "latency_ms": 300],
        ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo {{tool_use_id}} >> effects.log"]]], "latency_ms": 300],
        ["content": [["type": "text", "text": "done"]], "latency_ms": 100],
    ], "variants": [HostilePhase.variant, ChaosRun.burstVariant]]

    /// The indices of the harnesses that hold leases now, by their owner ids.
    func leaseHolders() async throws -> [Int] {
        let owners = Set((try? await sql.query("SELECT DISTINCT owner FROM drover.leases WHERE owner IS NOT NULL").map {
            try $0.decode(0) as String
        }) ?? [])
        return harnesses.indices.filter { i in owners.contains { $0.contains("_\(harnesses[i].pid)_") } }
    }

    func log(_ text: String) { Output.line(String(format: "[%6.1fs] ", (ContinuousClock.now - started) / .seconds(1)) + text) }
    let started = ContinuousClock.now

    func startPool(_ index: Int) async throws -> ChildDaemon {
        let pool = try ChildDaemon(
            binary: binary, ["sandbox-pool", "--listen", "127.0.0.1:0", "--warm", "2", "--capacity", "512", "--grace", "1",
                             "--workspace-root", "\(root)/pool\(index)-\(UInt32.random(in: 0...UInt32.max))"],
            environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token])
        poolAddresses.append(try await pool.waitForLog("listening")["address"]?.stringValue ?? "")
        return pool
    }

    func startHarness() async throws -> ChildDaemon {
        let harness = try ChildDaemon(
            binary: binary, ["harness", "--model-url", "http://\(modelAddress)", "--lease-ttl", "2", "--poll-interval", "0.2", "--grace", "1",
                             "--max-sessions", "16", "--allow-internal", "127.0.0.2"],
            environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token, "ANTHROPIC_API_KEY": ScriptedModelServer.placeholderKey])
        _ = try await harness.waitForLog("started", timeout: 60)
        return harness
    }

    func run(sessions: Int, timeout: Double, restartPostgres: String?) async throws -> [String] {
        let scriptFile = root + "/script.json"
        try Self.script.text.write(toFile: scriptFile, atomically: true, encoding: .utf8)
        model = try ChildDaemon(binary: binary, ["scripted-model", "--script", scriptFile], environment: [:])
        modelAddress = try await model.waitForLog("listening")["address"]?.stringValue ?? ""
        for index in 0..<2 { pools.append(try await startPool(index)) }
        for _ in 0..<harnessCount { harnesses.append(try await startHarness()) }
        api = try ChildDaemon(binary: binary, ["api", "--listen", "127.0.0.1:0", "--db-connections", "2", "--grace", "1"],
                              environment: ["DATABASE_URL": database.conninfo])
        apiAddress = try await api.waitForLog("listening")["address"]?.stringValue ?? ""
        let store = SessionStore(pool: sql)
        agent = try await store.createAgent(name: "chaos", model: "scripted")
        environment = try await store.createEnvironment(name: "chaos")
        try await sql.query(
            "SELECT count(drover.create_session($1, $2, '{\"content\":[{\"type\":\"text\",\"text\":\"go\"}]}', 0)) FROM generate_series(1, $3)",
            [agent, environment, sessions])
        hostileAgent = try await store.createAgent(
            name: "hostile", model: "scripted", toolsJSON: HostilePhase.agentTools.text, configJSON: hostile.agentConfig.text)
        let hostileEnvironment = try await store.createEnvironment(name: "hostile", configJSON: hostile.environmentConfig.text)
        hostileSessions = max(4, sessions / 10)
        try await sql.query(
            "SELECT count(drover.create_session($1, $2, $3, 0)) FROM generate_series(1, $4)",
            [hostileAgent, hostileEnvironment, JSONText.userMessage(HostilePhase.prompt), hostileSessions])
        log("\(sessions) sessions and \(hostileSessions) hostile ones queued; \(harnessCount) harnesses, 2 pools, drover api")
        let attacking = Atomic<Bool>(true)
        let attack = hostile.attack(
            api: apiAddress, model: modelAddress,
            pools: { [pools, poolAddresses] in zip(pools, poolAddresses).map { pool, address in (address, { pool.isRunning }) } },
            running: { attacking.load(ordering: .relaxed) })
        // On an early return (a timeout) the attack ends with its round.
        defer { attacking.store(false, ordering: .relaxed) }

        let deadline = ContinuousClock.now + .seconds(timeout)
        var nextKill = ContinuousClock.now + .seconds(Double.random(in: 1.5...3, using: &random))
        // The one-off faults land early, while most sessions are still in flight.
        let stopAt = ContinuousClock.now + .seconds(Double.random(in: 1...3, using: &random))
        let poolKillAt = ContinuousClock.now + .seconds(Double.random(in: 2...4, using: &random))
        let restartAt = ContinuousClock.now + .seconds(Double.random(in: 3...6, using: &random))
        var stopped: (ChildDaemon, ContinuousClock.Instant)?
        var didStop = false, didKillPool = false, didRestart = restartPostgres == nil
        if restartPostgres == nil { log("DROVER_PG_RESTART is not set: Postgres will not be restarted") }
        while true {
            let open: Int = (try? await sql.query("SELECT count(*) FROM drover.sessions WHERE status <> 'idle'")[0].decode(0)) ?? -1
            if open == 0 && didStop && didKillPool && didRestart { break }
            if ContinuousClock.now > deadline { return ["\(open) sessions still open after \(Int(timeout)) s"] }
            let now = ContinuousClock.now
            if now >= nextKill {
                // A harness that holds leases, when one does: killing an idle one tests little.
                let holders = try await leaseHolders()
                let index = holders.isEmpty ? Int.random(in: 0..<harnesses.count, using: &random)
                                            : holders[Int.random(in: 0..<holders.count, using: &random)]
                if stopped?.0 !== harnesses[index] {
                    harnesses[index].signal(SIGKILL)
                    _ = await harnesses[index].wait(timeout: 5)
                    log("SIGKILL harness pid \(harnesses[index].pid); \(open) sessions open")
                    harnesses[index] = try await startHarness()
                }
                nextKill = now + .seconds(Double.random(in: 1.5...3, using: &random))
            }
            if !didStop && now >= stopAt {
                // One that holds leases, as for the kills: pausing one that holds none (just
                // restarted, say) leaves the TTL path untested, and the run then fails its check.
                let holders = try await leaseHolders()
                let victim = harnesses[holders.isEmpty ? Int.random(in: 0..<harnesses.count, using: &random)
                                                       : holders[Int.random(in: 0..<holders.count, using: &random)]]
                victim.signal(SIGSTOP)
                stopped = (victim, now)
                didStop = true
                log("SIGSTOP harness pid \(victim.pid) (lease TTL 2 s)")
            }
            if let (victim, at) = stopped, now - at > .seconds(3.5) {
                victim.signal(SIGCONT)
                stopped = nil
                log("SIGCONT harness pid \(victim.pid)")
            }
            if !didKillPool && now >= poolKillAt {
                pools[0].signal(SIGKILL)
                _ = await pools[0].wait(timeout: 5)
                didKillPool = true
                log("SIGKILL sandbox pool pid \(pools[0].pid)")
            }
            // Never while a harness is paused: a restart drops the paused harness's connection too,
            // and its leases would be taken over by its freed liveness lock instead of by the TTL,
            // leaving the TTL path untested in that run.
            if !didRestart && didStop && stopped == nil && now >= restartAt, let restartPostgres {
                let status = try await Shell.run(restartPostgres)
                didRestart = true
                log("Postgres restarted (status \(status))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        if let (victim, _) = stopped { victim.signal(SIGCONT) }
        attacking.store(false, ordering: .relaxed)
        while !attack.isFinished { try await Task.sleep(for: .milliseconds(50)) }
        log("all sessions idle; verifying")
        let failures = try await check() + checkHostile()
        return try await failures + burst(sessions: max(40, sessions / 2), deadline: deadline)
    }

    /// `verify`, then every side-effect file against the log.
    func check() async throws -> [String] {
        var failures: [String] = []
        let report = try await Verifier(pool: sql).run(rescueWindow: 10)
        for breach in report.breaches {
            failures.append("verify \(breach.check) session \(breach.session) seq \(breach.seq.map(String.init) ?? "-"): \(breach.detail)")
        }
        log("verify: \(report.sessions) sessions, \(report.events) events, \(report.breaches.count) breaches")
        // Takeovers by cause: SIGKILLed harnesses are found gone by their liveness lock at once
        // (owner_gone); the SIGSTOPped one still holds its connection, so only its TTL ends its
        // leases (expired). A run that exercised both shows both.
        let causes = Dictionary(uniqueKeysWithValues: try await sql.query(
            "SELECT cause, count(*)::int FROM drover.lease_history WHERE cause IN ('owner_gone', 'expired') GROUP BY cause"
        ).map { (try $0.decode(0) as String, try $0.decode(1) as Int) })
        log("takeovers: \(causes["owner_gone"] ?? 0) after the holder was gone (liveness lock), \(causes["expired"] ?? 0) after the TTL")
        if causes["owner_gone"] == nil { failures.append("no takeover after a SIGKILL was by the liveness lock (owner_gone)") }
        if causes["expired"] == nil { failures.append("no takeover by expiry (the SIGSTOPped harness's leases)") }
        let registry = PoolRegistry(pool: sql)
        let live = Dictionary(uniqueKeysWithValues: try await registry.pools().filter { $0.status == "up" }.map { ($0.id, $0.address) })
        // Which sandbox each successful call ran in, from the log.
        // (The hostile sessions' calls write no effects.log; checkHostile reads their logs.)
        let rows = try await sql.query("""
            SELECT r.payload->>'sandbox', r.payload->>'tool_use_id', s.pool_id
              FROM drover.events r LEFT JOIN drover.sandboxes s ON s.id = r.payload->>'sandbox'
              JOIN drover.sessions session ON session.id = r.session_id
             WHERE r.type = 'agent.tool_result' AND (r.payload->>'is_error')::boolean IS NOT TRUE AND session.agent_id <> $1
            """, [hostileAgent])
        var expected: [String: (pool: String?, calls: [String])] = [:]
        var unverifiable = 0
        for row in rows {
            guard let sandbox = row[0], let call = row[1] else { continue }
            expected[sandbox, default: (row[2], [])].calls.append(call)
        }
        var clients: [String: PoolClient] = [:]
        var checkedFiles = 0
        for (sandbox, entry) in expected {
            // The killed pool may still look alive in the registry until its heartbeat times out.
            guard let poolID = entry.pool, let address = live[poolID] else {
                unverifiable += entry.calls.count
                continue
            }
            if clients[address] == nil { clients[address] = try? await PoolClient.connect(address, token: token) }
            guard let client = clients[address] else {
                unverifiable += entry.calls.count
                continue
            }
            let result = try await client.execute(
                sandbox: sandbox, callID: "chaos-check-" + UUID().uuidString, name: "bash", input: ["command": "cat effects.log"])
            let lines = (result["output"]?.stringValue ?? "").split(separator: "\n").map(String.init)
            for call in entry.calls where lines.filter({ $0 == call }).count != 1 {
                failures.append("sandbox \(sandbox): call \(call) appears \(lines.filter { $0 == call }.count) times in effects.log")
            }
            if Set(lines).count != lines.count { failures.append("sandbox \(sandbox): effects.log repeats a line: \(lines)") }
            checkedFiles += 1
        }
        clients.values.forEach { $0.close() }
        let failed = try await sql.query("""
            SELECT coalesce(payload->>'error', 'none'), count(*)::int FROM drover.events
             WHERE type = 'agent.tool_result' AND (payload->>'is_error')::boolean GROUP BY 1 ORDER BY 2 DESC
            """).map { "\(try $0.decode(0) as String) \(try $0.decode(1) as Int)" }
        log("side effects: \(checkedFiles) files checked, \(unverifiable) calls ran in the killed pool's sandboxes; "
            + "calls reported as failed or unknown in the log, by code: \(failed.isEmpty ? "none" : failed.joined(separator: ", "))")
        return failures
    }

    /// The hostile phase's verdict: every daemon alive, and the hostile sessions' logs bounded.
    func checkHostile() async throws -> [String] {
        var failures: [String] = []
        for (name, daemon) in [("drover api", api), ("the scripted model", model), ("sandbox pool 2", pools[1])] where daemon?.isRunning != true {
            failures.append("\(name) died during the hostile phase")
        }
        for harness in harnesses where !harness.isRunning { failures.append("harness pid \(harness.pid) died during the hostile phase") }
        let events = try await sql.query(
            "SELECT e.type, e.payload::text FROM drover.events e JOIN drover.sessions s ON s.id = e.session_id WHERE s.agent_id = $1",
            [hostileAgent]).map { (type: try $0.decode(0) as String, payload: try $0.decode(1) as String) }
        let verdict = hostile.check(events: events, sessions: hostileSessions)
        log(verdict.summary)
        return failures + verdict.breaches.map { "hostile: \($0)" }
    }

    func stop() async {
        hostile.stop()
        let daemons = harnesses + pools + [model, api].compactMap { $0 }
        for daemon in daemons where daemon.isRunning {
            daemon.signal(SIGCONT)
            daemon.signal(SIGTERM)
        }
        for daemon in daemons { _ = await daemon.wait(timeout: 15) }
        sql.close()
        try? FileManager.default.removeItem(atPath: root)
    }
}
