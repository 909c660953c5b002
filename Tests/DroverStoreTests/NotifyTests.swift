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

    /// `--notify-streams`: a group commit that appends events sends one notification on the
    /// events channel (which `drover api` listens on), and none without the option or without an
    /// append.
    @Test func aNotifyingGroupCommitRingsTheEventsChannelOnce() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            _ = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "h"), ttl: 30).first)
            let listener = try PostgresListener(conninfo: db.conninfo, channels: [LeaseQueue.eventsChannel])
            defer { listener.stop() }
            for _ in 0..<100 where !listener.isConnected { try await Task.sleep(for: .milliseconds(20)) }
            // Its connect rings once (a reconnect): taken before the checks.
            _ = await listener.wait(timeout: 0.3)
            let appends: [LeaseWrite] = (0..<5).map { _ in .append(lease, .agentMessage, payload: #"{"content":[]}"#) }
            _ = try await WriteBatch.send(appends, on: pool)
            #expect(await listener.wait(timeout: 0.5) == false, "without the option, no notification")
            _ = try await WriteBatch.send([.heartbeat(lease, ttl: 30)], on: pool, notifyStreams: true)
            #expect(await listener.wait(timeout: 0.5) == false, "nothing appended, no notification")
            _ = try await WriteBatch.send(appends, on: pool, notifyStreams: true)
            #expect(await listener.wait(timeout: 5) == true, "five appends in one commit: a notification")
            #expect(await listener.wait(timeout: 0.5) == false, "…and only one")
        }
    }
}
