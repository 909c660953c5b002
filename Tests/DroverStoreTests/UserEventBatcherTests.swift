import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// `events.send` group-committed (issue #22): concurrent sends share statements and commits, and
/// each still gets exactly its own answer, in its own order.
@Suite struct UserEventBatcherTests {
    @Test func concurrentSendsShareCommitsAndEachGetsItsOwnAnswer() async throws {
        try await TestDatabase.with { db in
            // Two connections: one batch in flight at a time, so whatever arrives meanwhile waits
            // for the next.
            let pool = db.pool(maxConnections: 2)
            defer { pool.close() }
            let f = try await Fixtures.make(pool)
            let open = [try await f.session(message: nil), try await f.session(message: nil)].map(\.rawValue)
            let archived = try await f.session(message: nil).rawValue
            let terminated = try await f.session(message: nil).rawValue
            try await pool.query("UPDATE drover.sessions SET archived_at = now() WHERE id = $1", [archived])
            try await pool.query("UPDATE drover.sessions SET status = 'terminated' WHERE id = $1", [terminated])
            let org: String = try await pool.query("SELECT org_id FROM drover.sessions WHERE id = $1", [open[0]])[0].decode(0)
            let store = TenantStore(pool: pool)
            func message(_ text: String) -> [JSONValue] { [["type": "user.message", "content": [["type": "text", "text": .string(text)]]]] }

            // Four clients per open session, each sending ten messages one after another, beside
            // clients whose every send is refused: archived, another organisation's, terminated.
            let outcomes = try await withThrowingTaskGroup(of: [String].self) { group in
                for session in open {
                    for client in 0..<4 {
                        group.addTask {
                            var seen: [String] = []
                            for n in 0..<10 {
                                let text = "\(session) \(client) \(n)"
                                let sent = try await store.sendEvents(org: org, session: session, message(text))
                                #expect(sent["data"]?[1] == nil && sent["data"]?[0]?["content"]?[0]?["text"]?.stringValue == text, "\(sent)")
                                seen.append("ok")
                            }
                            return seen
                        }
                    }
                }
                for (session, owner) in [(archived, org), (open[0], "org_someone_else"), (terminated, org)] {
                    group.addTask {
                        var seen: [String] = []
                        for n in 0..<10 {
                            do {
                                _ = try await store.sendEvents(org: owner, session: session, message("refused \(n)"))
                                seen.append("sent")
                            } catch let error as DroverError {
                                seen.append(error.code.rawValue)
                            }
                        }
                        return seen
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(outcomes.filter { $0 == "ok" }.count == 80)
            #expect(!outcomes.contains("sent"), "a refused send appended")
            #expect(outcomes.filter { $0 == "invalid_argument" }.count == 10, "archived")
            #expect(outcomes.filter { $0 == "not_found" }.count == 10, "another organisation's")
            #expect(outcomes.filter { $0 == "session_terminated" }.count == 10, "terminated")

            for session in open {
                let texts: [String] = try await pool.query(
                    "SELECT payload #>> '{content,0,text}' FROM drover.events WHERE session_id = $1 AND type = 'user.message' ORDER BY seq", [session]
                ).map { try $0.decode(0) }
                #expect(texts.count == 40)
                // Each client's messages are in the log in the order it sent them.
                for client in 0..<4 {
                    let own = texts.filter { $0.hasPrefix("\(session) \(client) ") }
                    #expect(own == (0..<10).map { "\(session) \(client) \($0)" })
                }
            }
            for session in [archived, terminated] {
                let count: Int = try await pool.query("SELECT count(*) FROM drover.events WHERE session_id = $1 AND type = 'user.message'", [session])[0].decode(0)
                #expect(count == 0)
            }
            // Sends that overlapped left together: fewer transactions than sends (events written
            // in one transaction share its xmin).
            let transactions: Int = try await pool.query(
                "SELECT count(DISTINCT xmin::text) FROM drover.events WHERE session_id = ANY ($1::text[]) AND type = 'user.message'", [open]
            )[0].decode(0)
            #expect(transactions < 80, "\(transactions) transactions for 80 sends")
        }
    }
}
