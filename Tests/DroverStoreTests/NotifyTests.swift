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

    /// A group commit that appends events is followed by one notification on the events channel
    /// (which `drover api` listens on), sent after the commit; none with `notifyStreams` off
    /// (`--no-notify-streams`) or without an append.
    @Test func aGroupCommitThatAppendsRingsTheEventsChannelOnceAfterItsCommit() async throws {
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
            let quiet = GroupCommitter(pool: pool, notifyStreams: false)
            _ = await quiet.submitAll(appends)
            #expect(await listener.wait(timeout: 0.5) == false, "with notifyStreams off, no notification")
            _ = await quiet.submitAll(appends, notify: true)
            #expect(await listener.wait(timeout: 5) == true, "a unit that asks for it: a notification")
            let committer = GroupCommitter(pool: pool)
            _ = await committer.submitAll([.heartbeat(lease, ttl: 30)])
            #expect(await listener.wait(timeout: 0.5) == false, "nothing appended, no notification")
            let before = try await pool.query("SELECT count(*) FROM drover.events").first!.decode(0) as Int
            _ = await committer.submitAll(appends)
            #expect(await listener.wait(timeout: 5) == true, "five appends in one commit: a notification")
            // Sent after the commit: what it announces is there when a listener wakes.
            #expect(try await pool.query("SELECT count(*) FROM drover.events").first!.decode(0) as Int == before + 5)
            #expect(await listener.wait(timeout: 0.5) == false, "…and only one")
        }
    }

    /// drover api's events.send commits, then wakes the harness (migration 0018): the user event
    /// is in the log when the notification arrives, and a rolled-back send wakes no one.
    @Test func aSentUserEventWakesTheHarnessAfterItsCommit() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            _ = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "h"), ttl: 30).first)
            let listener = try PostgresListener(conninfo: db.conninfo, channels: [LeaseQueue.userEventChannel])
            defer { listener.stop() }
            for _ in 0..<100 where !listener.isConnected { try await Task.sleep(for: .milliseconds(20)) }
            _ = await listener.wait(timeout: 0.3)
            let org: String = try await pool.query("SELECT org_id FROM drover.sessions WHERE id = $1", [session.rawValue]).first!.decode(0)
            let store = TenantStore(pool: pool)
            let sent = try await store.sendEvents(org: org, session: session.rawValue, [
                ["type": "user.message", "content": [["type": "text", "text": "hi"]]],
                ["type": "user.message", "content": [["type": "text", "text": "there"]]],
            ])
            #expect(sent["data"]?[0]?["content"]?[0]?["text"] == "hi" && sent["data"]?[1]?["content"]?[0]?["text"] == "there", "\(sent)")
            #expect(await listener.wait(timeout: 5) == true, "the running session's harness is woken")
            #expect(await listener.wait(timeout: 0.5) == false, "once")
            await #expect(throws: (any Error).self) {
                try await store.sendEvents(org: org, session: session.rawValue, [
                    ["type": "user.message", "content": [["type": "text", "text": "rolled back"]]],
                    // Refused by drover.append_user_event, in the same statement: both roll back.
                    ["type": "user.tool_result", "tool_use_id": "sevt_00000000000000000000000000000000"],
                ])
            }
            #expect(await listener.wait(timeout: 0.5) == false, "a refused send wakes no one")
            #expect(try await pool.query("SELECT count(*) FROM drover.events WHERE payload::text LIKE '%rolled back%'").first!.decode(0) as Int == 0)
        }
    }
}
