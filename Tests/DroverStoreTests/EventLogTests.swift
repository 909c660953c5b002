import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

@Suite struct EventLogTests {
    @Test func sixteenConcurrentUserWritersGetContiguousSeqs() async throws {
        try await TestDatabase.with { db in
            let setup = db.pool(maxConnections: 1)
            defer { setup.close() }
            let f = try await Fixtures.make(setup)
            let session = try await f.session(message: nil)
            let perWriter = 40
            let seqs = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for writer in 0..<16 {
                    group.addTask {
                        let own = db.pool(maxConnections: 1)
                        defer { own.close() }
                        let store = SessionStore(pool: own)
                        var mine: [Int64] = []
                        for i in 0..<perWriter {
                            mine.append(try await store.send(session, type: .userMessage, payload: JSONText.userMessage("\(writer)-\(i)")).seq)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [Int64]()) { $0 += $1 }
            }
            let total = 16 * perWriter
            #expect(seqs.sorted() == Array(1...Int64(total)))
            let stored = try await setup.query(
                "SELECT array_agg(seq ORDER BY seq) = array(SELECT generate_series(1, $2::int8)), count(*) FROM drover.events WHERE session_id = $1",
                [session.rawValue, total])[0]
            #expect(try stored.decode(0, as: Bool.self))
            #expect(try stored.decode(1, as: Int.self) == total)
            #expect(try await f.store.session(session).lastSeq == Int64(total))
        }
    }

    @Test func eventsCannotBeUpdatedDeletedOrTruncated() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            for sql in [
                "UPDATE drover.events SET payload = '{}' WHERE session_id = $1",
                "DELETE FROM drover.events WHERE session_id = $1",
            ] {
                let error = await #expect(throws: PostgresError.self) { try await pool.query(sql, [session.rawValue]) }
                #expect(error?.sqlState == "DR010")
            }
            let truncate = await #expect(throws: PostgresError.self) { try await pool.query("TRUNCATE drover.events CASCADE") }
            #expect(truncate?.sqlState == "DR010")
            #expect(try await f.eventCount(session) == 1)
        }
    }

    @Test func slicesAreExactAndPagingCoversTenThousandEvents() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session(message: nil)
            // 10,000 user events in one statement: seq i is a tool confirmation when i % 3 == 0, a message
            // when i % 3 == 1 and an interrupt when i % 3 == 2.
            let types = ["user.tool_confirmation", "user.message", "user.interrupt"]
            try await pool.query(
                """
                SELECT drover.send_event($1, ($2::text[])[i % 3 + 1], '{"i":' || i || '}')
                  FROM generate_series(1, 10000) AS i
                """, [session.rawValue, types])
            func seqs(_ events: [Event]) -> [Int64] { events.map(\.seq) }

            #expect(seqs(try await f.store.events(session, limit: 5)) == [1, 2, 3, 4, 5])
            #expect(seqs(try await f.store.events(session, after: 100, limit: 50)) == Array(101...150))
            #expect(seqs(try await f.store.events(session, before: 500, tail: 10)) == Array(490...499))
            #expect(seqs(try await f.store.events(session, tail: 3)) == [9998, 9999, 10000])
            #expect(seqs(try await f.store.events(session, after: 10, before: 14)) == [11, 12, 13])
            #expect(try await f.store.events(session, after: 10_000).isEmpty)
            let interrupts = try await f.store.events(session, after: 20, limit: 4, types: [.userInterrupt])
            #expect(seqs(interrupts) == [23, 26, 29, 32])
            #expect(interrupts.allSatisfy { $0.type == .userInterrupt && $0.leaseEpoch == nil })
            let lastTwo = try await f.store.events(session, before: 9000, tail: 2, types: [.userMessage, .userToolConfirmation])
            #expect(seqs(lastTwo) == [8997, 8998])
            let one = try #require(try await f.store.events(session, after: 41, limit: 1).first)
            #expect(one.payload == #"{"i": 42}"#)

            var all: [Int64] = []
            var after: Int64? = nil
            var pages = 0
            while true {
                let page = try await f.store.events(session, after: after, limit: 999)
                if page.isEmpty { break }
                pages += 1
                all += seqs(page)
                after = page.last?.seq
            }
            #expect(pages == 11)
            #expect(all == Array(1...10_000))
        }
    }

    @Test func badInputGetsACodedErrorAndWritesNothing() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let session = try await f.session()
            let lease = try #require(try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "h"), ttl: 30).first)
            let huge = #"{"blob":""# + String(repeating: "x", count: 1_048_576) + #""}"#
            let cases: [(DroverError.Code, () async throws -> Void)] = [
                (.notFound, { try await f.store.send(SessionID("sesn_nope"), type: .userMessage, payload: "{}") }),
                (.notFound, { _ = try await f.store.events(SessionID("sesn_nope")) }),
                (.notFound, { _ = try await f.store.session(SessionID("sesn_nope")) }),
                (.invalidPayload, { try await f.store.send(session, type: .userMessage, payload: "[1, 2]") }),
                (.invalidPayload, { try await f.store.send(session, type: .userMessage, payload: "\"text\"") }),
                (.invalidPayload, { try await f.store.send(session, type: .userMessage, payload: "{not json") }),
                (.invalidPayload, { try await f.store.append(lease, type: .agentMessage, payload: "null") }),
                (.payloadTooLarge, { try await f.store.send(session, type: .userMessage, payload: huge) }),
                (.payloadTooLarge, { try await f.store.append(lease, type: .agentMessage, payload: huge) }),
                (.unknownEventType, { try await f.store.send(session, type: .agentMessage, payload: "{}") }),
                (.unknownEventType, { try await f.store.send(session, type: EventType("user.sudo"), payload: "{}") }),
                (.unknownEventType, { try await f.store.append(lease, type: .userMessage, payload: "{}") }),
                (.invalidArgument, { _ = try await f.store.events(session, limit: 0) }),
                (.invalidArgument, { _ = try await f.store.events(session, tail: 20_000) }),
                (.notFound, { _ = try await f.store.createSession(agent: "agent_nope", environment: f.environment) }),
            ]
            for (index, (code, call)) in cases.enumerated() {
                let error = await #expect(throws: DroverError.self, "case \(index)") { try await call() }
                #expect(error?.code == code, "case \(index): \(String(reflecting: error))")
            }
            #expect(try await f.eventCount(session) == 2, "the message and the claim's session.status_running")
            #expect(try await f.store.session(session).lastSeq == 2)
        }
    }

    /// The limit is a row of drover.settings: only the schema's owner changes it, and a client's
    /// own `SET drover.max_payload_bytes` (which the limit used to be read from) changes nothing.
    @Test func thePayloadLimitIsASettingNoClientCanRaise() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            try await pool.query("UPDATE drover.settings SET value = '64' WHERE name = 'max_payload_bytes'")
            let session = try await f.session(message: nil)
            try await f.store.send(session, type: .userMessage, payload: JSONText.userMessage("short"))
            let long = JSONText.userMessage(String(repeating: "y", count: 80))
            let error = await #expect(throws: DroverError.self) { try await f.store.send(session, type: .userMessage, payload: long) }
            #expect(error?.code == .payloadTooLarge)
            // A client raising the old setting for its own session gets nothing past the limit.
            try await pool.query("SET drover.max_payload_bytes = 100000000")
            let still = await #expect(throws: DroverError.self) { try await f.store.send(session, type: .userMessage, payload: long) }
            #expect(still?.code == .payloadTooLarge)
            // A NUL (which jsonb cannot hold) is refused with a stable code, not a raw database error.
            let nul = await #expect(throws: DroverError.self) {
                try await f.store.send(session, type: .userMessage, payload: #"{"content":[{"type":"text","text":"a\u0000b"}]}"#)
            }
            #expect(nul?.code == .invalidPayload)
        }
    }

    @Test func agentVersionsArePinnedBySessions() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let first = try await f.session()
            let version: Int = try await pool.query("SELECT drover.update_agent($1, p_model => 'other')", [f.agent])[0].decode(0)
            #expect(version == 2)
            let second = try await f.session()
            #expect(try await f.store.session(first).agentVersion == 1)
            #expect(try await f.store.session(second).agentVersion == 2)
        }
    }
}
