import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Testing

/// Session threads in the store (migration 0035): a thread starts once per id, at most 25 per
/// session, only by the holder of its session's lease, and says so on its session's log.
struct ThreadStoreTests {
    @Test func aThreadStartsOnceAndASessionHasAtMost25() async throws {
        try await TestDatabase.with { database in
            let pool = database.pool()
            defer { pool.close() }
            let store = SessionStore(pool: pool)
            let agent = try await store.createAgent(name: "worker", model: "m")
            let environment = try await store.createEnvironment(name: "e")
            let parent = try await store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage("coordinate"))
            let lease = try #require(try await LeaseQueue(pool: pool).claim(max: 1, owner: HarnessID(rawValue: "hrn_test"), ttl: 30).first)
            let worker = (name: "worker", id: agent, version: 1)
            #expect(try await store.spawnThread(lease, thread: "sthr_0", agent: worker, message: "task"))
            #expect(try await store.spawnThread(lease, thread: "sthr_0", agent: worker, message: "task") == false, "the same call again")
            for n in 1..<25 { _ = try await store.spawnThread(lease, thread: "sthr_\(n)", agent: worker, message: "task \(n)") }
            do {
                _ = try await store.spawnThread(lease, thread: "sthr_25", agent: worker, message: "one too many")
                Issue.record("a 26th thread started")
            } catch let error as DroverError {
                #expect(error.code == .invalidArgument && error.message.contains("thread_limit"), "\(error)")
            }
            let rows = try await pool.query(
                "SELECT count(*)::int, min(status), bool_and(parent_session_id = $1) FROM drover.sessions WHERE id LIKE 'sthr\\_%'", [parent.rawValue])
            #expect(try rows[0].decode(0) as Int32 == 25 && rows[0].decode(1) as String == "queued" && rows[0].decode(2) as Bool)
            // Each start is on the session's log under the lease's epoch, two events per thread.
            let logged = try await pool.query(
                "SELECT count(*)::int FROM drover.events WHERE session_id = $1 AND lease_epoch = $2 AND type IN ('session.thread_created', 'agent.thread_message_sent')",
                [parent.rawValue, lease.epoch])
            #expect(try logged[0].decode(0) as Int32 == 50)
            // A stale holder starts nothing.
            var stale = lease
            stale.epoch += 1
            await #expect(throws: DroverError.self) {
                _ = try await store.spawnThread(stale, thread: "sthr_x", agent: worker, message: "late")
            }
        }
    }
}
