import DroverCore
import DroverPostgres
import DroverStore
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

    /// Usage and active time kept per session up to a seq (migration 0016) are what the whole log
    /// sums to, however renders and appends interleave.
    @Test func usageKeptUpToASeqMatchesTheWholeLog() async throws {
        try await TestDatabase.with { db in
            let sql = db.pool(maxConnections: 2)
            defer { sql.close() }
            let store = SessionStore(pool: sql)
            let agent = try await store.createAgent(name: "u", model: "m")
            let environment = try await store.createEnvironment(name: "u")
            let session = try await store.createSession(agent: agent, environment: environment).rawValue
            // Appends in rounds, as a harness would write them, with a render between rounds.
            func append(_ rounds: Int) async throws {
                try await sql.query("""
                    WITH n AS (SELECT last_seq FROM drover.sessions WHERE id = $1),
                    made AS (
                        INSERT INTO drover.events (session_id, seq, type, payload, created_at)
                        SELECT $1, n.last_seq + 3 * r + k,
                               (ARRAY['session.status_running', 'span.model_request_end', 'session.status_idle'])[k],
                               CASE k WHEN 2 THEN jsonb_build_object('model_usage', jsonb_build_object('input_tokens', 10 + r,
                                   'output_tokens', 2, 'cache_read_input_tokens', 1)) ELSE '{}'::jsonb END,
                               now() - interval '1 hour' + make_interval(secs => n.last_seq + 3 * r + k)
                          FROM n, generate_series(0, $2 - 1) r, generate_series(1, 3) k
                        RETURNING seq)
                    UPDATE drover.sessions SET last_seq = (SELECT max(seq) FROM made) WHERE id = $1
                    """, [session, rounds])
            }
            func rendered() async throws -> JSONValue {
                try JSONValue.parse(try await sql.query("SELECT drover.api_session_json(s)::text FROM drover.sessions s WHERE id = $1", [session])[0].decode(0) as String)
            }
            func expected() async throws -> (input: Int, output: Int, active: Double) {
                let row = try await sql.query("""
                    SELECT sum((payload->'model_usage'->>'input_tokens')::int)::int, sum((payload->'model_usage'->>'output_tokens')::int)::int,
                           (SELECT coalesce(sum(extract(epoch FROM coalesce(t.next_at, now()) - t.created_at)), 0)::float8
                              FROM (SELECT type, created_at, lead(created_at) OVER (ORDER BY seq) AS next_at FROM drover.events
                                     WHERE session_id = $1 AND type IN ('session.status_running', 'session.status_idle')) t
                             WHERE t.type = 'session.status_running')
                      FROM drover.events WHERE session_id = $1 AND type = 'span.model_request_end'
                    """, [session])[0]
                return (try row.decode(0), try row.decode(1), try row.decode(2))
            }
            for rounds in [5, 40, 1, 100, 30] {
                try await append(rounds)
                let json = try await rendered()
                let truth = try await expected()
                #expect(json["usage"]?["input_tokens"]?.intValue == truth.input && json["usage"]?["output_tokens"]?.intValue == truth.output)
                let active = json["usage"]?["active_seconds"]?.doubleValue ?? -1
                #expect(abs(active - truth.active) < 0.01 && json["stats"]?["active_seconds"]?.doubleValue == active, "\(active) vs \(truth.active)")
            }
            let through: Int = try await sql.query("SELECT through_seq::int FROM drover.session_usage WHERE session_id = $1", [session])[0].decode(0)
            #expect(through > 0, "the sums were kept")
        }
    }
}
