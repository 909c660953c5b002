import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct ClaimTests {
    @Test func eightConcurrentClaimersClaimEachOfAThousandSessionsExactlyOnce() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let fixtures = try await Fixtures.make(pool)
            let created = Set(try await fixtures.queuedSessions(1000))
            #expect(created.count == 1000)

            // Eight claimers, each with its own pool (so its own connection), batches of 7.
            let claims = try await withThrowingTaskGroup(of: [Lease].self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let own = db.pool(maxConnections: 1)
                        defer { own.close() }
                        let queue = LeaseQueue(pool: own)
                        let owner = HarnessID(rawValue: "claimer-\(index)")
                        var mine: [Lease] = []
                        while true {
                            let batch = try await queue.claim(max: 7, owner: owner, ttl: 60)
                            if batch.isEmpty { return mine }
                            mine += batch
                        }
                    }
                }
                return try await group.reduce(into: [Lease]()) { $0 += $1 }
            }
            #expect(claims.count == 1000)
            #expect(Set(claims.map(\.sessionID)) == created)
            #expect(claims.allSatisfy { $0.epoch == 1 })
            let owners = Set(claims.map(\.owner))
            #expect(owners.count > 1, "claims should spread across claimers")
            let running: Int = try await pool.query("SELECT count(*) FROM drover.sessions WHERE status = 'running' AND lease_epoch = 1")[0].decode(0)
            #expect(running == 1000)
        }
    }

    @Test func higherPriorityFirstThenOldestFirst() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let old = try await f.session(priority: 0)
            let urgent = try await f.session(priority: 9)
            let newer = try await f.session(priority: 0)
            let owner = HarnessID(rawValue: "h")
            #expect(try await f.queue.claim(max: 1, owner: owner, ttl: 10).map(\.sessionID) == [urgent])
            #expect(try await f.queue.claim(max: 1, owner: owner, ttl: 10).map(\.sessionID) == [old])
            #expect(try await f.queue.claim(max: 1, owner: owner, ttl: 10).map(\.sessionID) == [newer])
            #expect(try await f.queue.claim(max: 1, owner: owner, ttl: 10).isEmpty)
        }
    }

    @Test func idleSessionsAreNotRunnableUntilAUserMessage() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session(message: nil)
            let owner = HarnessID(rawValue: "h")
            #expect(try await f.queue.claim(max: 5, owner: owner, ttl: 10).isEmpty)
            // An interrupt alone does not make an idle session runnable.
            try await f.store.send(session, type: .userInterrupt, payload: "{}")
            #expect(try await f.queue.claim(max: 5, owner: owner, ttl: 10).isEmpty)
            try await f.store.send(session, type: .userMessage, payload: JSONText.userMessage("go"))
            #expect(try await f.queue.claim(max: 5, owner: owner, ttl: 10).map(\.sessionID) == [session])
        }
    }

    @Test func claimArgumentsAreChecked() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let queue = LeaseQueue(pool: pool)
            for (max, ttl) in [(0, 10.0), (1001, 10.0), (1, 0.01)] {
                let error = await #expect(throws: DroverError.self) {
                    _ = try await queue.claim(max: max, owner: HarnessID(rawValue: "h"), ttl: ttl)
                }
                #expect(error?.code == .invalidArgument)
            }
        }
    }
}
