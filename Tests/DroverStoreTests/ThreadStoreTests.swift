import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Testing

/// Session threads in the store (migration 0035): a thread starts once per id, at most 25 per
/// session, and its reply reaches its session's log as input when it goes idle.
struct ThreadStoreTests {
    @Test func aThreadStartsOnceAndASessionHasAtMost25() async throws {
        try await TestDatabase.with { database in
            let pool = database.pool()
            defer { pool.close() }
            let store = SessionStore(pool: pool)
            let agent = try await store.createAgent(name: "worker", model: "m")
            let environment = try await store.createEnvironment(name: "e")
            let parent = try await store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage("coordinate"))
            let worker = (name: "worker", id: agent, version: 1)
            #expect(try await store.spawnThread(parent: parent, thread: "sthr_0", agent: worker, message: "task"))
            #expect(try await store.spawnThread(parent: parent, thread: "sthr_0", agent: worker, message: "task") == false, "the same call again")
            for n in 1..<25 { _ = try await store.spawnThread(parent: parent, thread: "sthr_\(n)", agent: worker, message: "task \(n)") }
            do {
                _ = try await store.spawnThread(parent: parent, thread: "sthr_25", agent: worker, message: "one too many")
                Issue.record("a 26th thread started")
            } catch let error as DroverError {
                #expect(error.code == .invalidArgument && error.message.contains("thread_limit"), "\(error)")
            }
            let rows = try await pool.query(
                "SELECT count(*)::int, min(status), bool_and(parent_session_id = $1) FROM drover.sessions WHERE id LIKE 'sthr\\_%'", [parent.rawValue])
            #expect(try rows[0].decode(0) as Int32 == 25 && rows[0].decode(1) as String == "queued" && rows[0].decode(2) as Bool)
        }
    }
}
