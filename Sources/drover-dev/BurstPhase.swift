import DroverCore
import DroverIO
import DroverSandbox
import DroverStore
import Foundation

/// The chaos run's burst phase (issue #22): more sessions at once than the fleet has sandboxes,
/// each with a tool call, while a harness dies. Overload is queued, never failed.
extension ChaosRun {
    static let burstPrompt = "burst"
    static let burstCapacity = 8

    /// Sessions whose message is `burst`: one call that takes a moment, then an answer.
    static let burstVariant: JSONValue = [
        "match": .string(burstPrompt),
        "turns": [
            ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo {{tool_use_id}} >> burst.log; sleep 1"]]]],
            ["content": [["type": "text", "text": "burst done"]]],
        ],
    ]

    /// Runs the phase after the main one: returns what failed.
    func burst(sessions count: Int, deadline: ContinuousClock.Instant) async throws -> [String] {
        // The pools make way for one small one, so that the burst is many times its capacity.
        for pool in pools where pool.isRunning { pool.signal(SIGTERM) }
        for pool in pools { _ = await pool.wait(timeout: 15) }
        let small = try ChildDaemon(
            binary: binary, ["sandbox-pool", "--listen", "127.0.0.1:0", "--warm", "2", "--capacity", String(Self.burstCapacity), "--grace", "1",
                             "--workspace-root", "\(root)/burst-\(UInt32.random(in: 0...UInt32.max))"],
            environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": token])
        let address = try await small.waitForLog("listening")["address"]?.stringValue ?? ""
        pools.append(small)
        let client = try await PoolClient.connect(address, token: token)
        defer { client.close() }
        let burstAgent = try await SessionStore(pool: sql).createAgent(name: "burst", model: "scripted")
        try await sql.query(
            "SELECT count(drover.create_session($1, $2, $3, 0)) FROM generate_series(1, $4)",
            [burstAgent, environment, JSONText.userMessage(Self.burstPrompt), count])
        log("burst: \(count) sessions queued at once on one pool of capacity \(Self.burstCapacity)")
        var killed = false
        var peakWaiting = 0
        let killAt = ContinuousClock.now + .seconds(Double.random(in: 1...2, using: &random))
        while true {
            let open: Int = try await sql.query(
                "SELECT count(*)::int FROM drover.sessions WHERE agent_id = $1 AND status <> 'idle'", [burstAgent])[0].decode(0)
            if open == 0 && killed { break }
            if ContinuousClock.now > deadline + .seconds(120) { return ["burst: \(open) sessions still open"] }
            // Asked of the pool itself: its heartbeat (every 2 s) can miss a short line.
            let waiting = (try? await client.request("stats"))?["waiting"]?.intValue ?? 0
            peakWaiting = max(peakWaiting, waiting)
            if !killed && ContinuousClock.now >= killAt {
                if let index = try await leaseHolders().first {
                    harnesses[index].signal(SIGKILL)
                    _ = await harnesses[index].wait(timeout: 5)
                    log("burst: SIGKILL harness pid \(harnesses[index].pid); \(open) burst sessions open, \(waiting) provisions in line")
                    harnesses[index] = try await startHarness()
                }
                killed = true
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        var failures: [String] = []
        // A call whose harness died while it ran, and whose sandbox was then given to a waiting
        // call, says `outcome: unknown`, as promised (docs/guarantees.md); none may fail otherwise.
        let failed = try await sql.query("""
            SELECT coalesce(r.payload->>'error', r.payload->>'outcome', 'none'), count(*)::int FROM drover.events r
              JOIN drover.sessions s ON s.id = r.session_id
             WHERE s.agent_id = $1 AND r.type = 'agent.tool_result' AND (r.payload->>'is_error')::boolean
               AND r.payload->>'outcome' IS DISTINCT FROM 'unknown' GROUP BY 1
            """, [burstAgent]).map { "\(try $0.decode(0) as String) \(try $0.decode(1) as Int)" }
        let unknown: Int = try await sql.query("""
            SELECT count(*)::int FROM drover.events r JOIN drover.sessions s ON s.id = r.session_id
             WHERE s.agent_id = $1 AND r.type = 'agent.tool_result' AND r.payload->>'outcome' = 'unknown'
            """, [burstAgent])[0].decode(0)
        if !failed.isEmpty { failures.append("burst: calls failed: \(failed.joined(separator: ", "))") }
        let ended: Int = try await sql.query("""
            SELECT count(DISTINCT e.session_id)::int FROM drover.events e JOIN drover.sessions s ON s.id = e.session_id
             WHERE s.agent_id = $1 AND e.type = 'session.status_idle' AND e.payload->'stop_reason'->>'type' = 'end_turn'
            """, [burstAgent])[0].decode(0)
        if ended != count { failures.append("burst: \(ended) of \(count) sessions ended their turn") }
        if peakWaiting == 0 { failures.append("burst: no provision ever waited in line (the burst did not exceed capacity)") }
        let report = try await Verifier(pool: sql).run(rescueWindow: 10)
        for breach in report.breaches { failures.append("burst: verify \(breach.check) session \(breach.session): \(breach.detail)") }
        log("burst: \(ended) of \(count) ended their turn, up to \(peakWaiting) provisions in line, "
            + "failed calls: \(failed.isEmpty ? "none" : failed.joined(separator: ", ")), \(unknown) unknown after the kill, "
            + "verify \(report.breaches.count) breaches")
        return failures
    }
}
