import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// A pool connecting as a member of drover_registry can keep the registry and read nothing else.
@Suite struct RegistryRoleTests {
    @Test func aRegistryRoleRunsAPoolAndCannotReadTheLog() async throws {
        try await TestDatabase.with { db in
            let admin = db.pool(maxConnections: 1)
            defer { admin.close() }
            let role = "drover_pool_" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            try await admin.query("CREATE ROLE \(role) LOGIN IN ROLE drover_registry")
            guard var url = URLComponents(string: db.conninfo) else { return }
            url.user = role
            let restricted = ConnectionPool(conninfo: url.string!, maxConnections: 1)
            defer { restricted.close() }
            let registry = PoolRegistry(pool: restricted)
            try await registry.register(id: "pool_r", address: "127.0.0.1:1", capacity: 2, silentAfter: 10)
            try await registry.recordSandbox(id: "sb_r", pool: "pool_r", session: "sesn_r")
            // The heartbeat reads the sessions' status for the pool (session sesn_r does not exist).
            #expect(try await registry.heartbeat(id: "pool_r", runningCalls: 0, live: ["sb_r"]) == ["sb_r"])
            try await registry.sandboxEnded(id: "sb_r", reason: "session_ended")
            for sql in ["SELECT count(*) FROM drover.events", "SELECT count(*) FROM drover.sessions",
                        "SELECT * FROM drover.get_events('sesn_r')", "SELECT drover.create_agent('x', 'y')"] {
                let error = await #expect(throws: DroverError.self, "\(sql)") {
                    do { try await restricted.query(sql) } catch let error as PostgresError { throw DroverError(.database, "\(error.sqlState ?? "")") }
                }
                #expect(error?.message == "42501", "permission denied for \(sql)")
            }
            try await admin.query("DROP OWNED BY \(role)")
            try await admin.query("DROP ROLE \(role)")
        }
    }
}
