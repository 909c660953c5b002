import DroverCore
import DroverPostgres
import DroverSandbox
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct RegistryTests {
    @Test func poolsAndSandboxesAreRecordedAndASilentPoolIsReadAsSilent() async throws {
        try await TestDatabase.with { db in
            let sql = db.pool(maxConnections: 1)
            defer { sql.close() }
            let registry = PoolRegistry(pool: sql)
            // A pool that registered and then fell silent long ago.
            try await registry.register(id: "pool_silent", address: "127.0.0.1:1", capacity: 4, silentAfter: 10)
            try await registry.recordSandbox(id: "sb_orphan", pool: "pool_silent", session: "sesn_old")
            try await sql.query("UPDATE drover.sandbox_pools SET last_heartbeat_at = now() - interval '1 hour' WHERE id = 'pool_silent'")

            let running = try await RunningPool.start(environment: ["DATABASE_URL": db.conninfo])
            let client = try await running.client()
            let f = try await Fixtures.make(sql)
            let live = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "h"), ttl: 30).first)
            let sandbox = try await client.provision(session: live.rawValue)
            let poolID = try #require(try await client.request("stats")["pool"]?.stringValue)
            // The pool records what it provisions, but only a lease holder's record makes a sandbox
            // the session's (so a stale harness's sandbox is never adopted).
            try await Polling.until { try await sql.query("SELECT count(*) FROM drover.sandboxes WHERE id = $1", [sandbox])[0].decode(0) as Int == 1 }
            #expect(try await registry.sandbox(forSession: live.rawValue) == nil)
            #expect(try await registry.recordSessionSandbox(id: sandbox, pool: poolID, lease: lease) == sandbox)
            var stale = lease
            stale.epoch -= 1
            let refused = await #expect(throws: DroverError.self) { try await registry.recordSessionSandbox(id: "sb_other", pool: poolID, lease: stale) }
            #expect(refused?.code == .leaseLost)
            // A second sandbox recorded by the holder is refused in favour of the first.
            #expect(try await registry.recordSessionSandbox(id: "sb_second", pool: poolID, lease: lease) == sandbox)
            let found = try #require(try await registry.sandbox(forSession: live.rawValue))
            #expect(found.sandbox == sandbox)
            #expect(found.pool == poolID && found.address == running.address)
            let pools = try await registry.pools()
            #expect(pools.first?.id == poolID && pools.first?.status == "up")
            // The silent pool is read as silent; its sandbox is not offered; nobody wrote its rows.
            #expect(try await registry.pools().first { $0.id == "pool_silent" }?.status == "silent")
            #expect(try await registry.sandbox(forSession: "sesn_old") == nil)
            try await Task.sleep(for: .seconds(2.5))  // a heartbeat of the live pool has passed
            let rows = try await sql.query("SELECT p.status, s.status FROM drover.sandbox_pools p JOIN drover.sandboxes s ON s.pool_id = p.id WHERE p.id = 'pool_silent'")
            #expect(try rows[0].decode(0) as String == "up" && rows[0].decode(1) as String == "active")

            // An outage's leftovers (rows marked gone by an older pool, say): the live pool's next
            // heartbeat restores its pool row and its live sandbox.
            try await sql.query("UPDATE drover.sandboxes SET status = 'gone', ended_at = now() WHERE id = $1", [sandbox])
            try await sql.query("UPDATE drover.sandbox_pools SET status = 'gone' WHERE id = $1", [poolID])
            #expect(try await registry.sandbox(forSession: live.rawValue) == nil)
            try await Polling.until("restored") { try await registry.sandbox(forSession: live.rawValue)?.sandbox == sandbox }

            try await client.destroy(sandbox: sandbox)
            try await Polling.until { try await registry.sandbox(forSession: live.rawValue) == nil }
            #expect(try await registry.reclaimedSandbox(forSession: live.rawValue) == nil, "destroyed, not reclaimed")
            client.close()
            #expect(await running.stop() == 0)
            #expect(try await registry.pools().first { $0.id == poolID }?.status == "gone")
        }
    }

    /// After an outage, a pool's heartbeat restores its live sandboxes' rows, closes rows of
    /// sandboxes it no longer has, leaves other pools' rows alone, and answers with the sandboxes
    /// whose session ended for good.
    @Test func aHeartbeatHealsOnlyItsOwnRows() async throws {
        try await TestDatabase.with { db in
            let sql = db.pool(maxConnections: 1)
            defer { sql.close() }
            let registry = PoolRegistry(pool: sql)
            let f = try await Fixtures.make(sql)
            let (live, ended) = (try await f.session(), try await f.session())
            try await registry.register(id: "pool_a", address: "127.0.0.1:1", capacity: 4, silentAfter: 10)
            try await registry.register(id: "pool_b", address: "127.0.0.1:2", capacity: 4, silentAfter: 10)
            for (id, pool, session) in [("sb_a1", "pool_a", live), ("sb_a2", "pool_a", ended), ("sb_a3", "pool_a", live), ("sb_b1", "pool_b", live)] {
                try await registry.recordSandbox(id: id, pool: pool, session: session.rawValue)
            }
            try await sql.query("UPDATE drover.sandboxes SET created_at = now() - interval '1 minute'")
            // What an old pool's outage left: its rows marked gone by someone else.
            try await sql.query("UPDATE drover.sandboxes SET status = 'gone', ended_at = now() WHERE id IN ('sb_a1', 'sb_b1')")
            try await sql.query("UPDATE drover.sessions SET status = 'terminated' WHERE id = $1", [ended.rawValue])
            try await sql.query("UPDATE drover.sandbox_pools SET last_heartbeat_at = now() - interval '1 hour' WHERE id = 'pool_b'")

            let toDestroy = try await registry.heartbeat(id: "pool_a", runningCalls: 0, live: ["sb_a1", "sb_a2"])
            #expect(toDestroy == ["sb_a2"])
            let status = Dictionary(uniqueKeysWithValues: try await sql.query("SELECT id, status, coalesce(end_reason, '') FROM drover.sandboxes").map {
                (try $0.decode(0) as String, (try $0.decode(1) as String, try $0.decode(2) as String))
            })
            #expect(status["sb_a1"]! == ("active", ""), "restored")
            #expect(status["sb_a3"]! == ("destroyed", "lost"), "closed: the pool does not have it")
            #expect(status["sb_b1"]! == ("gone", ""), "another pool's row untouched")
            let pools = Dictionary(uniqueKeysWithValues: try await registry.pools().map { ($0.id, $0.status) })
            #expect(pools["pool_a"] == "up" && pools["pool_b"] == "silent")
        }
    }
}
