import DroverCore
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Sandboxes belong to sessions and are taken back: by the pool when it needs room or they idle,
/// by the registry when their session ends. Real Postgres, pool, harness and model server.
@Suite(.serialized) struct SandboxLifecycleTests {
    typealias E2E = HarnessEndToEndTests

    func withCluster(_ script: JSONValue, poolArgs: [String], _ body: (HarnessCluster) async throws -> Void) async throws {
        let cluster = try await HarnessCluster.start(script: script, poolArgs: poolArgs)
        do {
            try await body(cluster)
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    func sandboxRows(_ cluster: HarnessCluster) async throws -> [(status: String, reason: String)] {
        try await cluster.sql.query("SELECT status, coalesce(end_reason, '') FROM drover.sandboxes WHERE lease_epoch IS NOT NULL").map {
            (try $0.decode(0), try $0.decode(1))
        }
    }

    @Test func aPoolOfFourServesTwelveSessionsInARow() async throws {
        let script: JSONValue = ["turns": [E2E.tool("bash", ["command": "echo mine > f; cat f"]), E2E.say("Done.")]]
        try await withCluster(script, poolArgs: ["--capacity", "4"]) { cluster in
            for index in 1...12 {
                let session = try await cluster.session("session \(index)")
                let (reason, events) = try await cluster.waitForIdle(session)
                #expect(reason == "end_turn", "session \(index)")
                let result = try #require(events.first { $0.type == .agentToolResult }?.json)
                #expect(result["content"]?.stringValue == "mine\n" && result["is_error"] == false, "session \(index): \(result)")
            }
            let rows = try await sandboxRows(cluster)
            #expect(rows.count == 12)
            #expect(rows.filter { $0 == ("active", "") }.count == 4)
            try await Polling.until { try await sandboxRows(cluster).filter { $0 == ("reclaimed", "evicted") }.count == 8 }
        }
    }

    @Test func anIdleSandboxIsReclaimedAndTheNextCallGetsAFreshOneWithTheModelTold() async throws {
        let script: JSONValue = ["turns": [
            E2E.tool("write", ["path": "notes.txt", "content": "first"]), E2E.say("Written."),
            E2E.tool("bash", ["command": "ls -A; echo fresh"]), E2E.say("Looked."),
        ]]
        try await withCluster(script, poolArgs: ["--idle-ttl", "1"]) { cluster in
            let session = try await cluster.session("write a note")
            #expect(try await cluster.waitForIdle(session).stopReason == "end_turn")
            try await Polling.until { try await sandboxRows(cluster).first?.reason == "idle" }
            _ = try await cluster.store.send(session, type: .userMessage, payload: JSONText.userMessage("what is there now?"))
            try await Polling.until { try await cluster.events(session).filter { $0.type == .sessionStatusIdle }.count == 2 }
            let result = try #require(try await cluster.events(session).filter { $0.type == .agentToolResult }.last?.json)
            let content = result["content"]?.stringValue ?? ""
            #expect(content.contains("previous sandbox was reclaimed") && content.contains("idle") && content.hasSuffix("\nfresh\n"), "\(content)")
            #expect(result["sandbox_replaced"]?["reason"] == "idle")
            #expect(cluster.model.requests.last?["tool_results"]?[0]?.stringValue == content, "the model read the note")
            let rows = try await sandboxRows(cluster)
            #expect(rows.count == 2 && rows.contains { $0 == ("active", "") })
        }
    }

    /// A session that ended for good (terminated; a deleted one has no row, which the heartbeat
    /// treats the same: RegistryTests) gives its sandbox back at the pool's next heartbeat.
    @Test func aTerminatedSessionsSandboxIsDestroyed() async throws {
        let script: JSONValue = ["turns": [E2E.tool("bash", ["command": "true"]), E2E.say("Done.")]]
        try await withCluster(script, poolArgs: []) { cluster in
            let session = try await cluster.session("then end me")
            #expect(try await cluster.waitForIdle(session).stopReason == "end_turn")
            let client = try await cluster.pool.client()
            defer { client.close() }
            #expect(try await client.request("stats")["sandboxes"]?.intValue == 1)
            try await cluster.sql.query("UPDATE drover.sessions SET status = 'terminated' WHERE id = $1", [session.rawValue])
            // The pool's next heartbeat learns it and destroys the sandbox.
            try await Polling.until { try await client.request("stats")["sandboxes"]?.intValue == 0 }
            try await Polling.until { try await sandboxRows(cluster).first.map { $0 == ("destroyed", "session_ended") } ?? false }
        }
    }
}
