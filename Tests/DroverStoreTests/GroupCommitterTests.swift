import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct GroupCommitterTests {
    @Test func concurrentWritesShareCommitsAndEachKeepsItsOwnFencing() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.queuedSessions(40)
            let owner = HarnessID(rawValue: "grouped")
            let leases = try await f.queue.claim(max: 40, owner: owner, ttl: 30)
            #expect(leases.count == 40)
            // Ten of them are stale: same sessions, an epoch that was never granted.
            let stale = leases.prefix(10).map { lease -> Lease in
                var old = lease
                old.epoch -= 1
                return old
            }
            let xactBefore: Int64 = try await pool.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0].decode(0)
            let committer = GroupCommitter(pool: pool)
            let outcomes = await withTaskGroup(of: (SessionID, Bool, Result<AppendedEvent, any Error>).self) { group in
                for lease in leases {
                    group.addTask { (lease.sessionID, true, await capture { try await committer.append(lease, type: .sessionStatusRunning, payload: "{}") }) }
                }
                for lease in stale {
                    group.addTask { (lease.sessionID, false, await capture { try await committer.append(lease, type: .agentMessage, payload: "{}") }) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let xactAfter: Int64 = try await pool.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0].decode(0)
            for (session, fresh, outcome) in outcomes {
                switch outcome {
                case .success(let event):
                    #expect(fresh, "a stale write to \(session) succeeded")
                    #expect(event.seq == 3, "after the message and the claim's session.status_running")
                case .failure(let error):
                    #expect(!fresh, "a fresh write to \(session) failed: \(error)")
                    #expect((error as? DroverError)?.code == .leaseLost)
                }
            }
            // 50 writes in far fewer transactions than 50 (the counter also sees the two reads).
            #expect(xactAfter - xactBefore < 30, "\(xactAfter - xactBefore) commits for 50 writes")
            for lease in leases {
                let events = try await f.store.events(lease.sessionID)
                #expect(events.map(\.type) == [.userMessage, .sessionStatusRunning, .sessionStatusRunning])
            }
        }
    }

    /// Batches committed concurrently on several connections, each touching the same sessions in
    /// opposite orders: write_batch takes row locks in session order, so none waits on another in
    /// a cycle (before, Postgres aborted such batches after deadlock_timeout).
    @Test func concurrentBatchesInOppositeOrdersNeverDeadlock() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 4)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.queuedSessions(6)
            let leases = try await f.queue.claim(max: 6, owner: HarnessID(rawValue: "h"), ttl: 60).sorted { $0.sessionID.rawValue < $1.sessionID.rawValue }
            let deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            let before: Int64 = try await pool.query(deadlocks)[0].decode(0)
            let failures = await withTaskGroup(of: Int.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var failed = 0
                        for _ in 0..<25 {
                            let order = writer % 2 == 0 ? leases : leases.reversed()
                            let writes = order.map { LeaseWrite.append($0, .agentMessage, payload: "{}") }
                            for outcome in await (try? WriteBatch.send(writes, on: pool)) ?? writes.map({ _ in .failure(DroverError(.database, "batch")) }) {
                                if case .failure = outcome { failed += 1 }
                            }
                        }
                        return failed
                    }
                }
                return await group.reduce(0, +)
            }
            let after: Int64 = try await pool.query(deadlocks)[0].decode(0)
            #expect(failures == 0)
            #expect(after == before, "\(after - before) deadlocks")
            for lease in leases { #expect(try await f.store.session(lease.sessionID).lastSeq == 102) }
        }
    }

    /// The set-based finish: closing writes for three sessions and the next claim in one
    /// statement and one commit; the one whose lease moved on is refused (lease_lost), writing
    /// nothing, while the others commit their events and releases, and the claim goes through.
    @Test func theSetBasedFinishRefusesAStaleEpochAndCommitsTheOthers() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.queuedSessions(5)
            let owner = HarnessID(rawValue: "h")
            let leases = try await f.queue.claim(max: 3, owner: owner, ttl: 60)
            #expect(leases.count == 3 && leases.allSatisfy { $0.lastSeq == 2 }, "the claim appended session.status_running")
            var stale = leases[1]
            stale.epoch -= 1
            let finishing = [leases[0], stale, leases[2]].flatMap { lease in
                [LeaseWrite.append(lease, .sessionStatusIdle, payload: #"{"stop_reason":{"type":"end_turn"}}"#),
                 .release(lease, to: .idle, handledThrough: lease.lastSeq)]
            }
            let (outcomes, next) = try await f.queue.cycle(finishing: finishing, max: 2, owner: owner, ttl: 60)
            // One transaction: every row the cycle wrote (closing events, releases, the next claim's
            // events and grants) carries the same transaction id.
            let transactions: Int = try await pool.query("""
                SELECT count(DISTINCT x)::int FROM (
                    SELECT xmin::text AS x FROM drover.events WHERE seq > 2 OR type = 'session.status_running' AND session_id = ANY ($1)
                    UNION ALL SELECT xmin::text FROM drover.sessions WHERE id = ANY ($2)) t
                """, ["{" + next.map(\.sessionID.rawValue).joined(separator: ",") + "}",
                      "{" + ([leases[0], leases[2]] + next).map(\.sessionID.rawValue).joined(separator: ",") + "}"])[0].decode(0)
            #expect(transactions == 1)
            #expect(outcomes.count == 6)
            for index in [0, 1, 4, 5] { #expect((try? outcomes[index].get()) != nil, "write \(index) of a live lease") }
            for index in [2, 3] { #expect(outcomes[index].droverCode == .leaseLost, "write \(index) of the stale lease") }
            #expect(next.count == 2 && Set(next.map(\.sessionID)).isDisjoint(with: leases.map(\.sessionID)))
            for (lease, finished) in [(leases[0], true), (leases[1], false), (leases[2], true)] {
                let session = try await f.store.session(lease.sessionID)
                let events = try await f.store.events(lease.sessionID)
                if finished {
                    #expect(session.status == .idle && events.map(\.type) == [.userMessage, .sessionStatusRunning, .sessionStatusIdle])
                } else {
                    #expect(session.status == .running && session.lastSeq == 2 && events.count == 2, "the stale lease wrote nothing")
                }
            }
        }
    }

    /// When a whole batch is refused, units are retried one by one: a session's closing events and
    /// its release still commit together, and only the bad unit fails.
    @Test func aRefusedBatchIsRetriedUnitByUnitNeverSplittingAUnit() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.queuedSessions(2)
            let leases = try await f.queue.claim(max: 2, owner: HarnessID(rawValue: "h"), ttl: 60)
            let committer = GroupCommitter(pool: pool, maxInFlight: 1)
            async let good = committer.submitAll([.append(leases[0], .sessionStatusIdle, payload: "{}"), .release(leases[0], to: .idle, handledThrough: nil)])
            async let bad = committer.submitAll([.append(leases[1], .sessionStatusIdle, payload: "{}"), .append(leases[1], .agentMessage, payload: "{not json"),
                                                 .release(leases[1], to: .idle, handledThrough: nil)])
            let (goodOutcomes, badOutcomes) = await (good, bad)
            #expect(goodOutcomes.allSatisfy { (try? $0.get()) != nil })
            #expect(badOutcomes.allSatisfy { if case .failure = $0 { true } else { false } }, "the bad unit failed as a whole")
            #expect(try await f.store.session(leases[0].sessionID).status == .idle)
            let badSession = try await f.store.session(leases[1].sessionID)
            #expect(badSession.status == .running && badSession.lastSeq == 2, "nothing of the bad unit was written")
        }
    }

    @Test func aPayloadThatIsNotJSONFailsAloneAndTheRestAreWritten() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.queuedSessions(3)
            let leases = try await f.queue.claim(max: 3, owner: HarnessID(rawValue: "h"), ttl: 30)
            let committer = GroupCommitter(pool: pool, maxInFlight: 1)
            let payloads = ["{}", "{broken", #"{"ok":true}"#]
            let results = await withTaskGroup(of: (Int, Result<AppendedEvent, any Error>).self) { group in
                for (index, lease) in leases.enumerated() {
                    group.addTask { (index, await capture { try await committer.append(lease, type: .agentMessage, payload: payloads[index]) }) }
                }
                return await group.reduce(into: [Int: Result<AppendedEvent, any Error>]()) { $0[$1.0] = $1.1 }
            }
            #expect((try? results[0]?.get())?.seq == 3)
            #expect(results[1]?.droverCode == .invalidPayload)
            #expect((try? results[2]?.get())?.seq == 3)
            #expect(try await f.eventCount(leases[1].sessionID) == 2)
        }
    }

    @Test func heartbeatAndReleaseThroughTheBatch() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 2)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "h"), ttl: 1).first)
            let committer = GroupCommitter(pool: pool)
            let extended = try await committer.heartbeat(lease, ttl: 60)
            #expect(extended.expiresAt.timeIntervalSince(lease.expiresAt) > 50)
            try await f.store.send(session, type: .userMessage, payload: JSONText.userMessage("late"))
            #expect(try await committer.release(extended, handledThrough: lease.lastSeq) == .queued)
            let error = await #expect(throws: DroverError.self) { try await committer.release(extended) }
            #expect(error?.code == .leaseLost)
        }
    }

    @Test func writeBatchIsCallableFromSQL() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "sql"), ttl: 30).first)
            let rows = try await pool.query(
                """
                SELECT ord, seq, status, code FROM drover.write_batch(jsonb_build_array(
                    jsonb_build_object('op', 'append', 'session', $1::text, 'owner', 'sql', 'epoch', $2::int8, 'type', 'agent.message', 'payload', 1),
                    jsonb_build_object('op', 'append', 'session', $1::text, 'owner', 'sql', 'epoch', 99, 'type', 'agent.message', 'payload', 1),
                    jsonb_build_object('op', 'frobnicate'),
                    jsonb_build_object('op', 'release', 'session', $1::text, 'owner', 'sql', 'epoch', $2::int8, 'status', 'idle')
                ), ARRAY['{"content":[]}'])
                """, [session.rawValue, lease.epoch])
            #expect(rows.map { $0[0] } == ["1", "2", "3", "4"])
            #expect(rows[0][1] == "3" && rows[0][3] == nil)
            #expect(rows[1][3] == "lease_lost")
            #expect(rows[2][3] == "invalid_argument")
            #expect(rows[3][2] == "idle" && rows[3][3] == nil)
        }
    }
}
