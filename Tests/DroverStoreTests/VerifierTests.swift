import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct VerifierTests {
    /// A session run the proper way: claim, append, release.
    func cleanSession(_ f: Fixtures) async throws -> (SessionID, Lease) {
        let session = try await f.session()
        let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "h-\(session)"), ttl: 30).first { $0.sessionID == session })
        try await f.store.appendAll(lease, [
            (.sessionStatusRunning, "{}"), (.spanModelRequestStart, "{}"), (.spanModelRequestEnd, "{}"),
            (.agentToolUse, #"{"id":"t1","name":"bash","input":{}}"#), (.agentToolResult, #"{"tool_use_id":"t1","content":"ok"}"#),
            (.sessionStatusIdle, #"{"stop_reason":{"type":"end_turn"}}"#),
        ])
        try await f.queue.release(lease, handledThrough: lease.lastSeq)
        return (session, lease)
    }

    /// Writes an event around the API, as a broken harness would.
    func plant(_ pool: ConnectionPool, _ session: SessionID, type: String, payload: String = "{}", epoch: Int64?, seqOffset: Int64 = 1) async throws {
        try await pool.transaction { conn in
            let seq: Int64 = try await conn.query(
                "UPDATE drover.sessions SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq", [session.rawValue, seqOffset])[0].decode(0)
            try await conn.query(
                "INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch) VALUES ($1, $2, $3, $4::jsonb, $5)",
                [session.rawValue, seq, type, payload, epoch])
        }
    }

    @Test func aCleanDatabasePassesAndEachKindOfBreachIsFound() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await cleanSession(f)
            let verifier = Verifier(pool: pool)
            #expect(try await verifier.run().breaches.isEmpty)

            // A stale writer: epoch 1 writes after epoch 2 was granted.
            let (stale, _) = try await cleanSession(f)
            try await f.store.send(stale, type: .userMessage, payload: JSONText.userMessage("more"))
            let taken = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "other"), ttl: 30).first)
            try await f.store.append(taken, type: .sessionStatusRunning, payload: "{}")
            try await Task.sleep(for: .milliseconds(10))
            try await plant(pool, stale, type: "agent.message", epoch: 1)
            // A tool use never answered in an idle session.
            let (unanswered, lease) = try await cleanSession(f)
            try await plant(pool, unanswered, type: "agent.tool_use", payload: #"{"id":"t9","name":"bash"}"#, epoch: lease.epoch)
            // A gap in seq.
            let (gappy, gapLease) = try await cleanSession(f)
            try await plant(pool, gappy, type: "agent.message", epoch: gapLease.epoch, seqOffset: 2)
            // Idle, but the last status says running; and a user message nobody saw.
            let (confused, confusedLease) = try await cleanSession(f)
            try await plant(pool, confused, type: "session.status_running", epoch: confusedLease.epoch)
            try await plant(pool, confused, type: "user.message", payload: #"{"content":[]}"#, epoch: nil)
            // A message the user interrupted before any model request: no breach.
            let (interrupted, _) = try await cleanSession(f)
            try await plant(pool, interrupted, type: "user.message", payload: #"{"content":[]}"#, epoch: nil)
            try await plant(pool, interrupted, type: "user.interrupt", epoch: nil)
            // Stuck running long after the lease expired.
            let (stuck, _) = try await cleanSession(f)
            try await pool.query(
                "UPDATE drover.sessions SET status = 'running', lease_owner = 'ghost', lease_expires_at = now() - interval '2 hours' WHERE id = $1",
                [stuck.rawValue])

            let breaches = try await verifier.run().breaches
            func found(_ check: String, _ session: SessionID) -> Bool {
                breaches.contains { $0.check == check && $0.session == session.rawValue }
            }
            #expect(found("epoch_in_force", stale), "\(breaches)")
            #expect(found("epoch_order", stale))
            #expect(found("tool_result_per_use", unanswered))
            #expect(found("contiguous_seq", gappy))
            #expect(found("final_status", confused))
            #expect(found("user_event_seen", confused))
            #expect(found("no_stale_running", stuck))
            #expect(breaches.allSatisfy { [stale, unanswered, gappy, confused, stuck].map(\.rawValue).contains($0.session) }, "\(breaches)")

            let cli = try await DroverProcess.run(["verify"], database: db.conninfo)
            #expect(cli.status == 1)
            #expect(cli.stdout.contains("breach epoch_in_force session \(stale)"))
            #expect(cli.stdout.contains("verify: 7 sessions"))
            let json = try await DroverProcess.run(["verify", "--json"], database: db.conninfo)
            #expect(try JSONValue.parse(json.stdout)["ok"]?.boolValue == false)
        }
    }

    /// Memory written back by sessions (issue #24): a write under the lease in force passes; one
    /// under an epoch another lease followed, and a memory whose version is not its own, are found.
    @Test func memoryWritesOutsideTheirLeaseAreFound() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            let tenants = TenantStore(pool: pool)
            let org: String = try await pool.query("SELECT org_id FROM drover.sessions WHERE id = $1", [session.rawValue])[0].decode(0)
            let store = try await tenants.createMemoryStore(org: org, ["name": "notes"]).id
            try await pool.query(
                """
                INSERT INTO drover.session_resources (id, session_id, type, memory_store_id, access, mount_path)
                VALUES ('sesrsc_v', $1, 'memory_store', $2, 'read_write', '/mnt/memory/notes')
                """, [session.rawValue, store])
            let first = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "one"), ttl: 30).first)
            #expect(try await f.store.syncMemory(first, store: store, path: "/a.md", content: "x", expectedSHA256: nil, delete: false) != .leaseLost)
            let verifier = Verifier(pool: pool)
            #expect(try await verifier.run().breaches.isEmpty)

            // The lease moves on; a write under the first epoch is then refused...
            try await pool.query("UPDATE drover.sessions SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [session.rawValue])
            let second = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "two"), ttl: 30).first)
            #expect(second.epoch > first.epoch)
            #expect(try await f.store.syncMemory(first, store: store, path: "/b.md", content: "y", expectedSHA256: nil, delete: false) == .leaseLost)
            // ... and one planted past the fence, or a memory pointing at a version not its own, is found.
            try await Task.sleep(for: .milliseconds(10))
            try await pool.query(
                """
                INSERT INTO drover.memory_versions (id, store_id, memory_id, operation, path, content, content_sha256, content_size_bytes, created_by, lease_epoch)
                VALUES ('memver_planted', $1, 'mem_planted', 'created', '/c.md', 'z', 'x', 1, jsonb_build_object('type', 'session_actor', 'session_id', $2::text), $3)
                """, [store, session.rawValue, first.epoch])
            try await pool.query("UPDATE drover.memories SET content_sha256 = 'changed' WHERE store_id = $1", [store])
            let breaches = try await verifier.run().breaches
            #expect(breaches.contains { $0.check == "memory_epoch_in_force" && $0.session == session.rawValue }, "\(breaches)")
            #expect(breaches.contains { $0.check == "memory_current_version" })
            #expect(breaches.count == 2, "\(breaches)")
        }
    }
}
