import DroverCore
import DroverIO
import DroverSandbox
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Issue #22: a burst larger than the fleet's sandboxes waits its turn and never fails. A
/// provision that finds every sandbox of a pool running a call waits in line (first come, first
/// served) instead of failing with `capacity`; a pool that dies with provisions waiting sends
/// them to the next.
@Suite(.serialized) struct OverloadTests {
    static let script: JSONValue = ["turns": [
        HarnessEndToEndTests.tool("bash", ["command": "sleep 0.2; echo ran {{tool_use_id}}"]),
        HarnessEndToEndTests.say("done"),
    ]]

    /// Queues `count` sessions at once, in one statement.
    static func burst(_ cluster: HarnessCluster, _ count: Int, script: String = "go") async throws {
        try await cluster.sql.query(
            "SELECT count(drover.create_session($1, $2, $3, 0)) FROM generate_series(1, $4)",
            [cluster.agent, cluster.environment, JSONText.userMessage(script), count])
    }

    static func waitUntilAllIdle(_ cluster: HarnessCluster, timeout: Double) async throws {
        try await Polling.until("every session idle", timeout: timeout) {
            try await cluster.sql.query("SELECT count(*) FROM drover.sessions WHERE status <> 'idle'")[0].decode(0) as Int == 0
        }
    }

    /// Tool results that are errors, by code.
    static func errors(_ cluster: HarnessCluster) async throws -> [String: Int] {
        try await cluster.sql.query("""
            SELECT coalesce(payload->>'error', 'none'), count(*)::int FROM drover.events
             WHERE type = 'agent.tool_result' AND (payload->>'is_error')::boolean GROUP BY 1
            """).reduce(into: [:]) { found, row in found[try row.decode(0)] = try row.decode(1) }
    }

    static func endTurns(_ cluster: HarnessCluster) async throws -> Int {
        try await cluster.sql.query(
            "SELECT count(*) FROM drover.events WHERE type = 'session.status_idle' AND payload->'stop_reason'->>'type' = 'end_turn'")[0].decode(0)
    }

    @Test func twoHundredSessionsOnSixteenSandboxesAllEndWithoutAnErrorResult() async throws {
        let cluster = try await HarnessCluster.start(script: Self.script, harnesses: 2, poolArgs: ["--capacity", "16", "--warm", "4"])
        do {
            // Harness admission: while their sessions wait for sandboxes, harnesses claim nothing
            // more, and the surplus waits in the queue (what `drover top` and `drover harnesses` show).
            let sql = cluster.sql
            let watch = Task { () -> (paused: Bool, queuedWhilePaused: Int, held: Int) in
                var seen = (paused: false, queuedWhilePaused: 0, held: 0)
                while !Task.isCancelled {
                    if let stats = try? await QueueStats.sample(in: sql) {
                        if stats.harnessesPaused > 0 {
                            seen.paused = true
                            seen.queuedWhilePaused = max(seen.queuedWhilePaused, stats.queued)
                        }
                        seen.held = max(seen.held, stats.running)
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return seen
            }
            try await Self.burst(cluster, 200)
            try await Self.waitUntilAllIdle(cluster, timeout: 240)
            watch.cancel()
            let seen = await watch.value
            #expect(seen.paused, "no harness paused its claims while its sessions waited for sandboxes")
            #expect(seen.queuedWhilePaused > 0, "the surplus waited in the queue")
            #expect(seen.held < 200, "the harnesses held every session of the burst at once: \(seen.held)")
            #expect(try await HarnessView.all(in: sql).allSatisfy { !$0.claimsPaused }, "claims resume once nothing waits")
            #expect(try await Self.errors(cluster) == [:], "tool calls failed under the burst")
            #expect(try await Self.endTurns(cluster) == 200)
            let ran: Int = try await cluster.sql.query(
                "SELECT count(*) FROM drover.events WHERE type = 'agent.tool_result' AND payload->>'content' LIKE 'ran toolu_%'")[0].decode(0)
            #expect(ran == 200, "every call ran once")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func provisionsWaitingAtAPoolThatDiesRunElsewhere() async throws {
        let slow: JSONValue = ["turns": [HarnessEndToEndTests.tool("bash", ["command": "sleep 1.5; echo ran"]), HarnessEndToEndTests.say("done")]]
        let cluster = try await HarnessCluster.start(script: slow, harnesses: 2, poolArgs: ["--capacity", "4", "--warm", "0"])
        do {
            let second = try await RunningPool.start(
                ["--warm", "0", "--grace", "1", "--capacity", "4"], environment: ["DATABASE_URL": cluster.database.conninfo], token: cluster.pool.token)
            defer { Task { await second.stop() } }
            try await Self.burst(cluster, 40)
            // Wait until provisions are in line at a pool (the registry's order decides which),
            // then kill that pool.
            let pools = [cluster.pool, second]
            let clients = try await pools.asyncMap { try await PoolClient.connect($0.address, token: $0.token) }
            defer { clients.forEach { $0.close() } }
            var victim: RunningPool?
            try await Polling.until("provisions waiting at a pool", timeout: 30) {
                for (pool, client) in zip(pools, clients) where (try? await client.request("stats"))?["waiting"]?.intValue ?? 0 > 0 {
                    victim = pool
                    return true
                }
                return false
            }
            try #require(victim).daemon.signal(SIGKILL)
            try await Self.waitUntilAllIdle(cluster, timeout: 120)
            let errors = try await Self.errors(cluster)
            // Only calls running in the killed pool's four sandboxes may fail; none waited out.
            #expect(errors.values.reduce(0, +) <= 4 && errors["capacity"] == nil, "\(errors)")
            #expect(try await Self.endTurns(cluster) == 40)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    /// A provision waiting in line whose client goes away (a harness that died) leaves the line,
    /// and no sandbox is made for it: the room goes to the living.
    @Test func aProvisionWaitingForAClientThatWentAwayLeavesTheLine() async throws {
        try await TestDatabase.with { db in
            let pool = try await RunningPool.start(["--warm", "0", "--grace", "1", "--capacity", "1"], environment: ["DATABASE_URL": db.conninfo])
            defer { Task { await pool.stop() } }
            let busy = try await PoolClient.connect(pool.address, token: pool.token)
            defer { busy.close() }
            let observer = try await PoolClient.connect(pool.address, token: pool.token)
            defer { observer.close() }
            // The pool's one sandbox runs a call: the next provision waits in line.
            let sandbox = try await busy.provision()
            let running = Task { try await busy.execute(sandbox: sandbox, callID: "long", name: "bash", input: ["command": "sleep 4"]) }
            try await Task.sleep(for: .milliseconds(300))
            let leaving = try await PoolClient.connect(pool.address, token: pool.token)
            let waiting = Task { try? await leaving.provision(wait: 60) }
            try await Polling.until("a provision in line", timeout: 5) {
                try await observer.request("stats")["waiting"]?.intValue == 1
            }
            leaving.close()
            // At once, not when the running call ends and makes room.
            try await Polling.until("the line empty once its client closed", timeout: 1.5) {
                try await observer.request("stats")["waiting"]?.intValue == 0
            }
            _ = await waiting.value
            _ = try await running.value
            try await Task.sleep(for: .milliseconds(300))
            let listed = try await observer.request("list")
            guard case .array(let sandboxes)? = listed["sandboxes"] else { Issue.record("no list: \(listed)"); return }
            // The busy sandbox is still there: it was not reclaimed to make one for no one.
            #expect(sandboxes.map { $0["sandbox"]?.stringValue } == [sandbox], "no sandbox was made for the client that left: \(listed)")
        }
    }
}
