import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct LeaseTests {
    @Test func anExpiredLeaseIsTakenOverAndTheOldHolderIsFencedOut() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            let a = HarnessID(rawValue: "harness-a")
            let b = HarnessID(rawValue: "harness-b")

            // TTLs leave wide margins: the suite runs in parallel on two cores.
            let leaseA = try #require(try await f.queue.claim(max: 1, owner: a, ttl: 1.5).first)
            try await f.store.append(leaseA, type: .sessionStatusRunning, payload: "{}")
            // While A's lease is live, B gets nothing.
            #expect(try await f.queue.claim(max: 1, owner: b, ttl: 30).isEmpty)

            try await Task.sleep(for: .milliseconds(1700))
            let leaseB = try #require(try await f.queue.claim(max: 1, owner: b, ttl: 30).first)
            #expect(leaseB.sessionID == session)
            #expect(leaseB.epoch == leaseA.epoch + 1)
            let before = try await f.store.session(session)

            let refusals: [(String, () async throws -> Void)] = [
                ("heartbeat", { _ = try await f.queue.heartbeat(leaseA, ttl: 30) }),
                ("append", { try await f.store.append(leaseA, type: .agentMessage, payload: #"{"content":[]}"#) }),
                ("release", { try await f.queue.release(leaseA) }),
            ]
            for (what, call) in refusals {
                let error = await #expect(throws: DroverError.self, "\(what) under a stale lease") { try await call() }
                #expect(error?.code == .leaseLost, "\(what)")
            }
            // Nothing was written: same last seq, same events, B still holds the lease.
            let after = try await f.store.session(session)
            #expect(after.lastSeq == before.lastSeq)
            #expect(after.leaseOwner == b && after.leaseEpoch == leaseB.epoch && after.status == .running)
            #expect(after.leaseExpiresAt == before.leaseExpiresAt)
            #expect(try await f.eventCount(session) == 5,
                    "the message, each claim's session.status_running, A's append, and B's session.status_rescheduled (A never gave it back)")
            // B writes fine.
            #expect(try await f.store.append(leaseB, type: .agentMessage, payload: "{}").seq == 6)
        }
    }

    @Test func anExpiredButUnclaimedLeaseCannotWriteEither() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "a"), ttl: 0.2).first)
            try await Task.sleep(for: .milliseconds(300))
            let error = await #expect(throws: DroverError.self) {
                try await f.store.append(lease, type: .agentMessage, payload: "{}")
            }
            #expect(error?.code == .leaseLost)
        }
    }

    @Test func heartbeatsExtendTheLease() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.session()
            let ttl = 1.5
            var lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "a"), ttl: ttl).first)
            let claimed = ContinuousClock.now
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(400))
                let extended = try await f.queue.heartbeat(lease, ttl: ttl)
                #expect(extended.expiresAt > lease.expiresAt)
                lease = extended
            }
            // Longer after the claim than its TTL, the lease still holds because of the heartbeats.
            #expect(ContinuousClock.now - claimed > .seconds(ttl))
            #expect(try await f.store.append(lease, type: .agentMessage, payload: "{}").seq == 3)
            #expect(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "b"), ttl: 1).isEmpty)
        }
    }

    @Test func releaseRequeuesWhenUserEventsArrivedAfterWhatWasHandled() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            let owner = HarnessID(rawValue: "a")
            let lease = try #require(try await f.queue.claim(max: 1, owner: owner, ttl: 30).first)
            #expect(lease.lastSeq == 2, "the message, and session.status_running written by the claim")
            // A user message arrives mid-turn (seq 3); the harness only handled through seq 2.
            try await f.store.send(session, type: .userMessage, payload: JSONText.userMessage("also this"))
            try await f.store.append(lease, type: .sessionStatusIdle, payload: #"{"stop_reason":{"type":"end_turn"}}"#)
            #expect(try await f.queue.release(lease, handledThrough: lease.lastSeq) == .queued)
            let again = try #require(try await f.queue.claim(max: 1, owner: owner, ttl: 30).first)
            #expect(again.sessionID == session && again.epoch == 2 && again.lastSeq == 5)
            #expect(try await f.queue.release(again, handledThrough: again.lastSeq) == .idle)
            #expect(try await f.store.session(session).status == .idle)
        }
    }

    @Test func terminatedSessionsAcceptNothing() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "a"), ttl: 30).first)
            #expect(try await f.queue.release(lease, to: .terminated) == .terminated)
            let error = await #expect(throws: DroverError.self) {
                try await f.store.send(session, type: .userMessage, payload: JSONText.userMessage("hello?"))
            }
            #expect(error?.code == .sessionTerminated)
            #expect(try await f.eventCount(session) == 2)
            #expect(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "b"), ttl: 30).isEmpty)
        }
    }
}
