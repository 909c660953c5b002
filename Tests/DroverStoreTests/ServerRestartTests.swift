import DroverCore
import DroverIO
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Restarts the Postgres server under running claim loops. `make test` runs this suite on its own,
/// after the others, because the restart drops every connection on the server.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["DROVER_PG_RESTART"] != nil, "needs DROVER_PG_RESTART"))
struct ServerRestartTests {
    static let sessions = 300

    @Test func claimLoopsRideOutARestartWithNothingLostOrDoubleClaimed() async throws {
        try await TestDatabase.with { db in
            let control = db.pool(maxConnections: 1)
            defer { control.close() }
            let f = try await Fixtures.make(control)
            _ = try await f.queuedSessions(Self.sessions)
            let startedBefore: String? = try await control.query("SELECT pg_postmaster_start_time()::text")[0][0]

            let stop = Task<Void, Never> {}
            let loops = (0..<2).map { index in
                Task { try await Self.claimLoop(db: db, owner: HarnessID(rawValue: "loop-\(index)"), until: stop) }
            }

            try await Self.waitUntil(timeout: 60) { try await Self.idleCount(control) >= Self.sessions / 5 }
            #expect(try await Shell.run(ProcessInfo.processInfo.environment["DROVER_PG_RESTART"]!) == 0)
            try await Self.waitUntil(timeout: 90) { try await Self.idleCount(control) == Self.sessions }
            stop.cancel()
            var errors = 0
            for loop in loops { errors += try await loop.value }

            let startedAfter: String? = try await control.query("SELECT pg_postmaster_start_time()::text")[0][0]
            #expect(startedAfter != startedBefore, "the server really restarted")
            #expect(errors > 0, "the loops saw the restart")

            // Every log: contiguous seqs, epochs never go backwards, ends with session.status_idle.
            let breaches = try await control.query(
                """
                SELECT s.id FROM drover.sessions s
                 WHERE s.status <> 'idle'
                    OR s.last_seq <> (SELECT count(*) FROM drover.events e WHERE e.session_id = s.id)
                    OR s.last_seq <> (SELECT max(seq) FROM drover.events e WHERE e.session_id = s.id)
                    OR EXISTS (SELECT 1 FROM drover.events a JOIN drover.events b
                                 ON a.session_id = b.session_id AND b.seq = a.seq + 1
                                WHERE a.session_id = s.id AND b.lease_epoch < a.lease_epoch)
                    OR (SELECT type FROM drover.events e WHERE e.session_id = s.id ORDER BY seq DESC LIMIT 1)
                       <> 'session.status_idle'
                """)
            #expect(breaches.isEmpty, "sessions breaking the log invariants: \(breaches.map { $0[0] ?? "" })")
        }
    }

    /// Claims, appends running and idle, releases; on any database error waits a moment and goes
    /// on, as a harness does. Returns how many errors it rode out.
    static func claimLoop(db: TestDatabase, owner: HarnessID, until stop: Task<Void, Never>) async throws -> Int {
        let pool = db.pool(maxConnections: 2)
        defer { pool.close() }
        let store = SessionStore(pool: pool)
        let queue = LeaseQueue(pool: pool)
        var errors = 0
        while !stop.isCancelled {
            do {
                let leases = try await queue.claim(max: 5, owner: owner, ttl: 2)
                if leases.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
                for lease in leases {
                    try await store.append(lease, type: .sessionStatusRunning, payload: "{}")
                    try await store.append(lease, type: .sessionStatusIdle, payload: #"{"stop_reason":{"type":"end_turn"}}"#)
                    try await queue.release(lease, handledThrough: lease.lastSeq)
                }
            } catch let error as DroverError where error.code == .connectionLost || error.code == .leaseLost {
                errors += 1
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        return errors
    }

    static func idleCount(_ pool: ConnectionPool) async throws -> Int {
        do {
            return try await pool.query("SELECT count(*) FROM drover.sessions WHERE status = 'idle'")[0].decode(0)
        } catch let error as PostgresError where error.code == .connectionLost {
            return -1
        }
    }

    static func waitUntil(timeout: Double, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("condition not met within \(timeout) s")
    }
}
