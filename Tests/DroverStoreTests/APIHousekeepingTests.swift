import DroverPostgres
import DroverTestSupport
import Foundation
import Testing

/// Issue #27 (4, 6) against a real server: idempotency keys whose request never finished are
/// not stuck for a day, expired keys are deleted, and the queue is sampled once per mark however
/// many API replicas ask.
@Suite struct APIHousekeepingTests {
    static func begin(_ sql: ConnectionPool, _ key: String, _ request: String) async throws -> String {
        try await sql.query("SELECT state FROM drover.api_idempotency_begin('org_a', $1, $2)", [key, request])[0].decode(0)
    }

    @Test func aKeyWhoseRequestNeverFinishedIsFreedAndExpiredKeysGo() async throws {
        try await TestDatabase.with { db in
            let sql = db.pool(maxConnections: 2)
            defer { sql.close() }
            try await sql.query("INSERT INTO drover.organizations (id, name) VALUES ('org_a', 'a') ON CONFLICT DO NOTHING")
            #expect(try await Self.begin(sql, "k", "POST /v1/agents\n{}") == "new")
            #expect(try await Self.begin(sql, "k", "POST /v1/agents\n{}") == "in_progress")
            // Its replica died mid-request three minutes ago: the same request takes the key over.
            try await sql.query("UPDATE drover.idempotency_keys SET created_at = now() - interval '3 minutes' WHERE key = 'k'")
            #expect(try await Self.begin(sql, "k", "POST /v1/other\n{}") == "mismatch", "another request never takes it")
            #expect(try await Self.begin(sql, "k", "POST /v1/agents\n{}") == "new")
            // Finished keys are kept 24 hours, then the sampler deletes them.
            try await sql.query("SELECT drover.api_idempotency_end('org_a', 'k', 200, '{}')")
            try await sql.query("""
                INSERT INTO drover.idempotency_keys (org_id, key, request_hash, status, response, created_at)
                SELECT 'org_a', 'old' || n, '\\x00', 200, '{}', now() - interval '25 hours' FROM generate_series(1, 50) n
                """)
            try await sql.query("SELECT drover.sample_queue()")
            let left: [String] = try await sql.query("SELECT key FROM drover.idempotency_keys ORDER BY key").map { try $0.decode(0) }
            #expect(left == ["k"], "\(left)")
        }
    }

    @Test func theQueueIsSampledOncePerMarkAcrossReplicas() async throws {
        try await TestDatabase.with { db in
            let sql = db.pool(maxConnections: 4)
            defer { sql.close() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await sql.query("SELECT drover.sample_queue()") } }
                try await group.waitForAll()
            }
            let samples: Int = try await sql.query("SELECT count(*) FROM drover.queue_samples")[0].decode(0)
            #expect(samples == 1 || samples == 2, "one per 15-second mark (two if the calls straddled one): \(samples)")
        }
    }
}
