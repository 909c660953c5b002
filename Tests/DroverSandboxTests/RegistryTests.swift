import DroverCore
import DroverPostgres
import DroverSandbox
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct RegistryTests {
    @Test func poolsAndSandboxesAreRecordedAndASilentPoolIsMarkedGone() async throws {
        try await TestDatabase.with { db in
            let sql = db.pool(maxConnections: 1)
            defer { sql.close() }
            let registry = PoolRegistry(pool: sql)
            // A pool that registered and then fell silent long ago.
            try await registry.register(id: "pool_silent", address: "127.0.0.1:1", capacity: 4)
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
            try await Self.eventually { try await sql.query("SELECT count(*) FROM drover.sandboxes WHERE id = $1", [sandbox])[0].decode(0) as Int == 1 }
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
            // The live pool's heartbeat marked the silent one, and its sandbox, gone.
            try await Self.eventually { try await registry.pools().first { $0.id == "pool_silent" }?.status == "gone" }
            #expect(try await registry.sandbox(forSession: "sesn_old") == nil)

            try await client.destroy(sandbox: sandbox)
            try await Self.eventually { try await registry.sandbox(forSession: live.rawValue) == nil }
            client.close()
            #expect(await running.stop() == 0)
            #expect(try await registry.pools().first { $0.id == poolID }?.status == "gone")
        }
    }

    static func eventually(timeout: Double = 10, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("condition not met within \(timeout) s")
    }
}
