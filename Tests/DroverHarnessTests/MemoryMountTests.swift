import DroverCore
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Issue #24, item 2, against real daemons: a long turn's memory changes are written back on the
/// way (`--memory-sync-interval`), while the session still runs, as versions of the session; a
/// harness stopped or killed in the middle of a write-back loses nothing acknowledged and writes
/// nothing once its lease has moved, and its successor writes back the rest.
@Suite(.serialized) struct MemoryMountTests {
    /// A memory store named notes, and a session it is attached to (read-write), sent "go".
    static func sessionWithNotes(_ cluster: HarnessCluster) async throws -> (store: String, session: String) {
        let tenants = TenantStore(pool: cluster.sql)
        let store = try await tenants.createMemoryStore(org: "org_default", ["name": "notes"]).id
        let created = try await tenants.createSession(org: "org_default", [
            "agent": .string(cluster.agent), "environment_id": .string(cluster.environment),
            "resources": [["type": "memory_store", "memory_store_id": .string(store)]],
            "initial_events": [["type": "user.message", "content": [["type": "text", "text": "go"]]]],
        ])
        return (store, created.id)
    }

    @Test func aLongTurnsMemoryChangesAreWrittenBackOnTheWay() async throws {
        let script: JSONValue = ["turns": [
            HarnessEndToEndTests.tool("bash", ["command": "echo one > /mnt/memory/notes/a.md; sleep 1.5"]),
            HarnessEndToEndTests.tool("bash", ["command": "sleep 4"]),
            HarnessEndToEndTests.say("done"),
        ]]
        let cluster = try await HarnessCluster.start(script: script, harnessArgs: ["--memory-sync-interval", "1"])
        do {
            let (store, session) = try await Self.sessionWithNotes(cluster)
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

    /// The turn leaves 500 new memory files; the holder is SIGKILLed (taken over at once through
    /// its liveness lock) or SIGSTOPped (its lease expires after the TTL, and it is woken after
    /// the successor finished) once the first write-backs are in. Every file ends up in the store
    /// exactly once, the stopped holder's writes after the takeover are refused, and
    /// `drover verify` finds every version written under a lease then in force.
    @Test(arguments: [SIGKILL, SIGSTOP])
    func aHolderStoppedMidSyncLosesNothingAndWritesNothingMore(signal: Int32) async throws {
        let files = 500
        let script: JSONValue = ["turns": [
            HarnessEndToEndTests.tool("bash", ["command": .string("for i in $(seq 1 \(files)); do echo \"note $i\" > /mnt/memory/notes/n$i.md; done")]),
            HarnessEndToEndTests.say("done"),
        ]]
        let cluster = try await HarnessCluster.start(script: script)
        do {
            let (store, session) = try await Self.sessionWithNotes(cluster)
            func versions() async throws -> Int {
                try await cluster.sql.query("SELECT count(*)::int FROM drover.memory_versions WHERE store_id = $1", [store])[0].decode(0)
            }
            try await Polling.until("the write-back has begun", timeout: 30) { try await versions() >= 10 }
            let holder = try #require(cluster.harnessProcesses.first)
            holder.signal(signal)
            let cutAt = try await versions()
            #expect(cutAt < files, "stopped mid-sync (\(cutAt) of \(files) written)")
            _ = try await cluster.startHarness()
            try await Polling.until("the successor ends the turn", timeout: 30) {
                try await cluster.sql.query("SELECT status FROM drover.sessions WHERE id = $1", [session])[0].decode(0) as String == "idle"
            }
            if signal == SIGSTOP {
                // Woken after its lease moved: whatever it was about to write is refused.
                let before = try await versions()
                holder.signal(SIGCONT)
                try await Task.sleep(for: .seconds(1.5))
                #expect(try await versions() == before, "the old holder wrote after its lease moved")
                holder.signal(SIGKILL)
            }
            let rows = try await cluster.sql.query(
                "SELECT path, content FROM drover.memories WHERE store_id = $1 ORDER BY path", [store]
            ).map { "\(try $0.decode(0) as String)=\(try $0.decode(1) as String)" }
            #expect(rows == (1...files).map { "/n\($0).md=note \($0)\n" }.sorted(), "every file is a memory once (\(rows.count))")
            let creates: Int = try await cluster.sql.query(
                "SELECT count(*)::int FROM drover.memory_versions WHERE store_id = $1 AND operation = 'created'", [store])[0].decode(0)
            #expect(creates == files)
            let epochs: Int = try await cluster.sql.query(
                "SELECT count(DISTINCT lease_epoch)::int FROM drover.memory_versions WHERE store_id = $1", [store])[0].decode(0)
            #expect(epochs == 2, "the holder and its successor each wrote part")
            let report = try await Verifier(pool: cluster.sql).run()
            #expect(report.breaches.isEmpty, "drover verify: \(report.breaches)")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}

/// Issue #24, item 3, against real daemons: a dream is a session, so a harness SIGKILLed in the
/// middle of one leaves it to the next harness, which resumes it from the log and completes it.
@Suite struct DreamResumeTests {
    @Test func aDreamWhoseHarnessDiesIsResumedAndCompletes() async throws {
        let script: JSONValue = ["turns": [
            HarnessEndToEndTests.tool("bash", ["command": "sleep 2; ls /mnt/session/transcripts > /mnt/memory/notes-dream/read.md"]),
            HarnessEndToEndTests.say("done"),
        ]]
        let cluster = try await HarnessCluster.start(script: script)
        do {
            let tenants = TenantStore(pool: cluster.sql)
            let store = try await tenants.createMemoryStore(org: "org_default", ["name": "notes"]).id
            let read = try await tenants.createSession(org: "org_default", [
                "agent": .string(cluster.agent), "environment_id": .string(cluster.environment),
            ]).id
            let dream = try await tenants.createDream(org: "org_default", [
                "inputs": [["type": "memory_store", "memory_store_id": .string(store)], ["type": "sessions", "session_ids": [.string(read)]]],
                "model": "scripted",
            ], actor: .apiKey("test"))
            let id = dream.id
            let session: String = try await cluster.sql.query("SELECT session_id FROM drover.dreams WHERE id = $1", [id])[0].decode(0)
            _ = try await cluster.waitForEvent(SessionID(rawValue: session)) { $0.type == .agentToolUse }
            let holder = try #require(try await cluster.holder(of: SessionID(rawValue: session)))
            kill(holder.pid, SIGKILL)
            _ = try await cluster.startHarness()
            var final = dream
            try await Polling.until("the dream ends", timeout: 30) {
                final = try await tenants.dream(org: "org_default", id: id)
                return ["completed", "failed", "canceled"].contains(final.status)
            }
            #expect(final.status == "completed", "\(final)")
            let output = try #require(final.outputs.first?["memory_store_id"]?.stringValue)
            let written: [String] = try await cluster.sql.query(
                "SELECT content FROM drover.memories WHERE store_id = $1 AND path = '/read.md'", [output]).map { try $0.decode(0) }
            #expect(written == ["\(read).md\n"], "the resumed dream read the transcript and wrote the store")
            let epochs: Int = try await cluster.sql.query("SELECT lease_epoch::int FROM drover.sessions WHERE id = $1", [session])[0].decode(0)
            #expect(epochs >= 2, "claimed again after its holder died")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
