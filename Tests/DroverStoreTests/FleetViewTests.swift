import DroverCore
import DroverIO
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// The operator views against a database in a known state: one lease held, one expired, a live
/// and a dead harness, a pool with a sandbox.
@Suite struct FleetViewTests {
    func knownState(_ db: TestDatabase) async throws -> (held: SessionID, expired: SessionID) {
        let pool = db.pool(maxConnections: 1)
        defer { pool.close() }
        let f = try await Fixtures.make(pool)
        try await pool.query("SELECT drover.register_harness('hrn_alive', 'host-a', 101)")
        try await pool.query("SELECT drover.register_harness('hrn_dead', 'host-b', 202)")
        try await pool.query("UPDATE drover.harnesses SET last_heartbeat_at = now() - interval '1 minute' WHERE id = 'hrn_dead'")
        let held = try await f.session()
        _ = try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "hrn_alive"), ttl: 60)
        let expired = try await f.session()
        _ = try await f.queue.claim(max: 1, owner: HarnessID(rawValue: "hrn_dead"), ttl: 0.2)
        _ = try await f.session()
        let registry = PoolRegistry(pool: pool)
        try await registry.register(id: "pool_one", address: "127.0.0.1:7420", capacity: 8, silentAfter: 10)
        try await registry.recordSandbox(id: "sb_one", pool: "pool_one", session: held.rawValue)
        try await Task.sleep(for: .milliseconds(400))
        return (held, expired)
    }

    static func lines(_ output: String) throws -> [JSONValue] {
        try output.split(separator: "\n").map { try JSONValue.parse(String($0)) }
    }

    @Test func everyViewsJSON() async throws {
        try await TestDatabase.with { db in
            let (held, expired) = try await knownState(db)
            let leases = try Self.lines(try await DroverProcess.run(["leases", "--json"], database: db.conninfo).stdout)
            #expect(leases.count == 2)
            let byID = Dictionary(uniqueKeysWithValues: leases.map { ($0["session"]?.stringValue ?? "", $0) })
            #expect(byID[held.rawValue]?["expired"]?.boolValue == false)
            #expect(byID[held.rawValue]?["owner"]?.stringValue == "hrn_alive")
            #expect((byID[held.rawValue]?["expires_in_s"]?.doubleValue ?? 0) > 50)
            #expect(byID[expired.rawValue]?["expired"]?.boolValue == true)
            #expect((byID[expired.rawValue]?["expires_in_s"]?.doubleValue ?? 0) < 0)
            #expect(leases.allSatisfy { $0["status"]?.stringValue == "running" && $0["held_for_s"]?.doubleValue != nil })

            let harnesses = try Self.lines(try await DroverProcess.run(["harnesses", "--json"], database: db.conninfo).stdout)
            let state = Dictionary(uniqueKeysWithValues: harnesses.map { ($0["id"]?.stringValue ?? "", $0) })
            #expect(state["hrn_alive"]?["state"]?.stringValue == "alive")
            #expect(state["hrn_alive"]?["sessions_held"]?.intValue == 1)
            #expect(state["hrn_dead"]?["state"]?.stringValue == "gone")
            #expect(state["hrn_dead"]?["pid"]?.intValue == 202)

            let pools = try Self.lines(try await DroverProcess.run(["pools", "--json"], database: db.conninfo).stdout)
            #expect(pools.count == 1)
            #expect(pools[0]["sandboxes"]?.intValue == 1 && pools[0]["capacity"]?.intValue == 8 && pools[0]["status"]?.stringValue == "up")

            let top = try Self.lines(try await DroverProcess.run(["top", "--json", "--interval", "0.2"], database: db.conninfo).stdout)
            #expect(top.count == 1)
            #expect(top[0]["queued"]?.intValue == 1 && top[0]["running"]?.intValue == 2 && top[0]["expired_leases"]?.intValue == 1)
            #expect((top[0]["oldest_runnable_age_s"]?.doubleValue ?? 0) > 0)
            #expect(top[0]["claims_per_s"]?.doubleValue != nil && top[0]["events_per_s"]?.doubleValue != nil)

            // Without a terminal there is no colour in the tables.
            let plain = try await DroverProcess.run(["leases"], database: db.conninfo)
            #expect(plain.stdout.contains("EXPIRED") && !plain.stdout.contains("\u{1B}["))
        }
    }

    @Test func leasesWatchRedrawsUnderAPseudoTerminal() async throws {
        try await TestDatabase.with { db in
            let (held, expired) = try await knownState(db)
            let capture = NSTemporaryDirectory() + "drover-pty-\(UInt64.random(in: 0...UInt64.max)).txt"
            defer { try? FileManager.default.removeItem(atPath: capture) }
            // util-linux `script` gives the command a pseudo-terminal and records what it draws.
            // NO_COLOR is cleared: the test runner may set it, and colour is what is checked.
            let command = "NO_COLOR= DATABASE_URL='\(db.conninfo)' timeout -s INT 1.8 script -qfec '\(TestDatabase.droverBinary.path) leases --watch --interval 0.5' /dev/null > \(capture) 2>&1"
            _ = try await Shell.run(command)
            let screen = (try? String(contentsOfFile: capture, encoding: .utf8)) ?? ""
            #expect(screen.components(separatedBy: "\u{1B}[H\u{1B}[2J").count - 1 >= 2, "at least two refreshes")
            #expect(screen.contains(held.rawValue) && screen.contains(expired.rawValue))
            #expect(screen.contains("\u{1B}[31;1mEXPIRED"), "the expired lease is highlighted on a terminal")
            #expect(screen.contains("HELD FOR") && screen.contains("hrn_alive"))
        }
    }

    /// `drover top`'s memory figures: stores, memories and the bytes their tables take.
    @Test func queueStatsCountMemory() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool()
            defer { pool.close() }
            let tenants = TenantStore(pool: pool)
            let store = try await tenants.createMemoryStore(org: "org_default", ["name": "n"]).id
            _ = try await tenants.createMemory(org: "org_default", store: store, ["path": "/a.md", "content": "hello"], actor: .apiKey("k"), full: false)
            let stats = try await QueueStats.sample(in: pool)
            #expect(stats.memoryStores == 1 && stats.memories == 1 && stats.memoryBytes > 0, "\(stats)")
        }
    }
}
