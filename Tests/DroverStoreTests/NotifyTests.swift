import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct NotifyTests {
    @Test func aWaitingClaimerWakesOnNotifyLongBeforeItsPollInterval() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            // Poll once an hour: only the notification can wake it within the test.
            let claimer = try Claimer(queue: f.queue, owner: HarnessID(rawValue: "waiter"), ttl: 30, pollInterval: 3600)
            defer { claimer.stop() }
            let waiting = Task { try await claimer.next(max: 4) }
            // Let the claimer find nothing and start waiting, with its LISTEN in place.
            for _ in 0..<100 where !claimer.isListening { try await Task.sleep(for: .milliseconds(20)) }
            #expect(claimer.isListening)
            try await Task.sleep(for: .milliseconds(200))

            let started = ContinuousClock.now
            let session = try await f.session()
            let claimed = try await withThrowingTaskGroup(of: [Lease]?.self) { group in
                group.addTask { try await waiting.value }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                waiting.cancel()
                return first
            }
            #expect(claimed?.map(\.sessionID) == [session])
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }
}
