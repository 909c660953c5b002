import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Synchronization
import Testing

/// A fleet against a Postgres with stock settings: the connection budget holds.
@Suite(.serialized) struct FleetTests {
    /// Eight harnesses with default flags (64 sessions each) against `max_connections = 100`: all
    /// 200 one-tool sessions end their turn, the server never refuses a connection, and the peak
    /// number of backends stays within the budget (harnesses × 4 + the pool's and the test's).
    @Test func eightHarnessesWithDefaultFlagsFitAStockPostgres() async throws {
        let server = try await ThrowawayPostgres.start()
        do {
            let maxConnections: String = try await {
                let admin = ConnectionPool(conninfo: server.url, maxConnections: 1)
                defer { admin.close() }
                return try await admin.query("SHOW max_connections")[0].decode(0)
            }()
            #expect(maxConnections == "100")
            let script: JSONValue = ["turns": [HarnessEndToEndTests.tool("bash", ["command": "true"]), HarnessEndToEndTests.say("Done.")]]
            let cluster = try await HarnessCluster.start(
                script: script, harnesses: 8, harnessArgs: ["--lease-ttl", "30", "--poll-interval", "1"], poolArgs: ["--capacity", "256"],
                server: server.url)
            let peak = Mutex(0)
            let sampling = Task {
                let sampler = ConnectionPool(conninfo: server.url, maxConnections: 1)
                defer { sampler.close() }
                while !Task.isCancelled {
                    if let count: Int = try? await sampler.query("SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend'")[0].decode(0) {
                        peak.withLock { $0 = max($0, count) }
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            do {
                var sessions: [SessionID] = []
                for index in 0..<200 { sessions.append(try await cluster.session("fleet \(index)")) }
                let deadline = ContinuousClock.now + .seconds(120)
                var idle = 0
                while ContinuousClock.now < deadline {
                    idle = try await cluster.sql.query("SELECT count(*)::int FROM drover.sessions WHERE status = 'idle'")[0].decode(0)
                    if idle == sessions.count { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(idle == 200)
                let endTurns: Int = try await cluster.sql.query(
                    "SELECT count(*)::int FROM drover.events WHERE type = 'session.status_idle' AND payload->'stop_reason'->>'type' = 'end_turn'")[0].decode(0)
                #expect(endTurns == 200)
                let owners: Int = try await cluster.sql.query("SELECT count(DISTINCT owner)::int FROM drover.lease_history")[0].decode(0)
                print("fleet: 200 sessions over \(owners) harnesses; peak client backends \(peak.withLock { $0 }) of \(maxConnections)")
            } catch {
                sampling.cancel()
                await cluster.stop()
                throw error
            }
            sampling.cancel()
            _ = await sampling.value
            await cluster.stop()
            let log = server.serverLog
            #expect(!log.isEmpty)
            #expect(!log.contains("too many clients") && !log.contains("remaining connection slots"), "the server refused connections")
            // 8 harnesses × 4, the pool's 2, the test's pools (4 + 1) and the sampler.
            #expect(peak.withLock { $0 } <= 8 * 4 + 2 + 6)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}
