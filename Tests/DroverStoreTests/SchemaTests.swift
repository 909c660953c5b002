import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct SchemaTests {
    /// Appends bump `last_seq` on the session row on every event; that column is unindexed so the
    /// update is HOT (no index churn).
    @Test func appendsAreHOTUpdatesOfTheSessionRow() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "h"), ttl: 30).first)
            let (updates, hot) = try await pool.transaction { conn -> (Int, Int) in
                // PG 15 also shows this backend's not-yet-flushed counts of earlier transactions
                // here, and nothing is flushed mid-transaction: count the difference.
                let counters = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = 'drover.sessions'::regclass"
                let before = try await conn.query(counters)[0]
                for _ in 0..<8 {
                    try await conn.query(
                        "SELECT * FROM drover.append_event($1, $2, $3, 'agent.message', '{}')",
                        [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch])
                }
                let after = try await conn.query(counters)[0]
                return (try after.decode(0) - before.decode(0, as: Int.self), try after.decode(1) - before.decode(1, as: Int.self))
            }
            #expect(updates == 8)
            #expect(hot == 8)
        }
    }

    @Test func harnessRegistry() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let id = HarnessID.fresh()
            try await pool.query("SELECT drover.register_harness($1, $2, $3)", [id.rawValue, "host-a", 4242])
            try await pool.query("SELECT drover.harness_heartbeat($1)", [id.rawValue])
            try await pool.query("SELECT drover.harness_stopped($1)", [id.rawValue])
            let row = try await pool.query("SELECT host, pid, stopped_at IS NOT NULL FROM drover.harnesses WHERE id = $1", [id.rawValue])[0]
            #expect(try row.decode(0, as: String.self) == "host-a")
            #expect(try row.decode(1, as: Int.self) == 4242)
            #expect(try row.decode(2, as: Bool.self))
            #expect(HarnessID.fresh() != HarnessID.fresh())
        }
    }
}
