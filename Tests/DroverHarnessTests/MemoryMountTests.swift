import DroverCore
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Issue #24, item 2, against real daemons: a long turn's memory changes are written back on the
/// way (`--memory-sync-interval`), while the session still runs, as versions of the session.
@Suite struct MemoryMountTests {
    @Test func aLongTurnsMemoryChangesAreWrittenBackOnTheWay() async throws {
        let script: JSONValue = ["turns": [
            HarnessEndToEndTests.tool("bash", ["command": "echo one > /mnt/memory/notes/a.md; sleep 1.5"]),
            HarnessEndToEndTests.tool("bash", ["command": "sleep 4"]),
            HarnessEndToEndTests.say("done"),
        ]]
        let cluster = try await HarnessCluster.start(script: script, harnessArgs: ["--memory-sync-interval", "1"])
        do {
            let tenants = TenantStore(pool: cluster.sql)
            let store = try #require(try await tenants.createMemoryStore(org: "org_default", ["name": "notes"])["id"]?.stringValue)
            let created = try await tenants.createSession(org: "org_default", [
                "agent": .string(cluster.agent), "environment_id": .string(cluster.environment),
                "resources": [["type": "memory_store", "memory_store_id": .string(store)]],
                "initial_events": [["type": "user.message", "content": [["type": "text", "text": "go"]]]],
            ])
            let session = try #require(created["id"]?.stringValue)
            // Written back after the first step, while the second still runs.
            try await Polling.until("the memory is written back mid-turn", timeout: 30) {
                try await cluster.sql.query("SELECT count(*) FROM drover.memories WHERE store_id = $1 AND path = '/a.md'", [store])[0].decode(0) as Int == 1
            }
            let status: String = try await cluster.sql.query("SELECT status FROM drover.sessions WHERE id = $1", [session])[0].decode(0)
            #expect(status == "running", "written back on the way, not at the end of the turn")
            let actor: String = try await cluster.sql.query(
                "SELECT created_by->>'session_id' FROM drover.memory_versions WHERE store_id = $1", [store])[0].decode(0)
            #expect(actor == session)
            try await Polling.until("the turn ends", timeout: 30) {
                try await cluster.sql.query("SELECT status FROM drover.sessions WHERE id = $1", [session])[0].decode(0) as String == "idle"
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
