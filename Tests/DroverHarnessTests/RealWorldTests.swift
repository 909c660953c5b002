import DroverCore
import DroverIO
import DroverModel
import DroverSandbox
import DroverScriptedModel
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// The harness against what nobody here wrote: a strict imitation of the Messages API (every
/// test's model server refuses what the real API refuses), any bytes from tools, and crashes at
/// the worst moments. Real Postgres, real pool and harness processes.
@Suite(.serialized) struct RealWorldTests {
    typealias E2E = HarnessEndToEndTests

    /// A cluster as the end-to-end tests run it; the model server must have refused nothing.
    func withCluster(_ script: JSONValue, harnesses: Int = 1, args: [String] = [], _ body: (HarnessCluster) async throws -> Void) async throws {
        try await E2E().withCluster(script, harnesses: harnesses, args: args) { cluster in
            try await body(cluster)
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
        }
    }

    @Test func aMessageSentWhileAToolRunsIsAnsweredWithTheToolResult() async throws {
        let script: JSONValue = ["turns": [E2E.tool("bash", ["command": "sleep 1.5; echo slow"]), E2E.say("Both done.")]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("start the slow thing")
            try await cluster.waitForEvent(session) { $0.type == .agentToolUse }
            let sent = try await cluster.store.send(session, type: .userMessage, payload: JSONText.userMessage("and while you are at it"))
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            // The message landed between the tool use and its result; the next request carried both.
            let use = try #require(events.first { $0.type == .agentToolUse })
            let result = try #require(events.first { $0.type == .agentToolResult })
            #expect(use.seq < sent.seq && sent.seq < result.seq)
            let requests = events.filter { $0.type == .spanModelRequestStart }
            #expect(requests.count == 2 && requests[1].seq > result.seq)
            #expect(cluster.model.requests.last?["tool_results"] == ["slow\n"])
            E2E.expectConsistent(events)
        }
    }

    @Test func binaryToolOutputIsStoredExactlyAndTheModelReadsIt() async throws {
        let script: JSONValue = ["turns": [E2E.tool("bash", ["command": #"printf 'a\0b\377c'; find . -maxdepth 0 -print0"#]), E2E.say("Read it.")]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("binary please")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let result = try #require(events.first { $0.type == .agentToolResult }?.json)
            let text = "a\u{2400}b\u{FFFD}c.\u{2400}"
            #expect(result["content"]?.stringValue == text)
            let exact = try #require(ToolText.bytes(text: text, base64: result["content_base64"]?.stringValue))
            #expect(exact == [0x61, 0x00, 0x62, 0xFF, 0x63, 0x2E, 0x00])
            #expect(cluster.model.requests.last?["tool_results"] == [.string(text)], "the next model request carried the output")
        }
    }

    @Test func aHarnessThatDiedAfterTheFinalAnswerIsFinishedWithoutCallingTheModel() async throws {
        try await withCluster(["turns": [E2E.say("must not be asked")]], harnesses: 0) { cluster in
            let session = try await cluster.session("question")
            // The state a harness leaves when it is killed after writing its final answer and
            // before its release commits: the answer is in the log, the lease is still held.
            let ghost = try await Self.ghostClaim(cluster, session)
            for (type, payload) in [("session.status_running", "{}"), ("span.model_request_start", #"{"turn":1}"#),
                                    ("span.model_request_end", #"{"stop_reason":"end_turn"}"#),
                                    ("agent.message", #"{"content":[{"type":"text","text":"The answer."}]}"#)] {
                try await cluster.sql.query("SELECT drover.append_event($1, 'ghost', $2, $3, $4)", [session.rawValue, ghost, type, payload])
            }
            try await cluster.startHarness()
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            #expect(cluster.model.requests.isEmpty, "the successor did not call the model again")
            #expect(events.filter { $0.type == .spanModelRequestStart }.count == 1)
            #expect(events.filter { $0.type == .agentMessage }.count == 1)
        }
    }

    @Test func aSessionWhoseHarnessesKeepDyingIsClosedAsRetriesExhausted() async throws {
        try await withCluster(["turns": [E2E.say("must not be asked")]], harnesses: 0) { cluster in
            let session = try await cluster.session("the poison message")
            // Five harnesses in a row claimed it and died mid-call (each lease expired).
            for _ in 1...5 {
                let epoch = try await Self.ghostClaim(cluster, session)
                try await cluster.sql.query("SELECT drover.append_event($1, 'ghost', $2, 'span.model_request_start', '{}')", [session.rawValue, epoch])
            }
            try await cluster.startHarness(["--max-attempts", "5"])
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "retries_exhausted")
            #expect(events.contains { $0.type == .sessionError && $0.json["error"]?["type"]?.stringValue == "retries_exhausted" })
            #expect(cluster.model.requests.isEmpty)
            // A clean release resets the count: the next message runs normally.
            try await cluster.store.send(session, type: .userMessage, payload: JSONText.userMessage("try again"))
            try await cluster.waitForEvent(session) { $0.type == .sessionStatusIdle && $0.json["stop_reason"]?["type"]?.stringValue == "end_turn" }
        }
    }

    @Test func twoToolCallsInOneResponseShareOneSandbox() async throws {
        let script: JSONValue = ["turns": [
            ["content": [["type": "tool_use", "name": "write", "input": ["path": "a.txt", "content": "A"]],
                         ["type": "tool_use", "name": "write", "input": ["path": "b.txt", "content": "B"]]]],
            E2E.tool("bash", ["command": "ls"]), E2E.say("Both there."),
        ]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("two files")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let listing = events.filter { $0.type == .agentToolResult }.last?.json["content"]?.stringValue
            #expect(listing == "a.txt\nb.txt\n")
            let sandboxes: Int = try await cluster.sql.query("SELECT count(*) FROM drover.sandboxes WHERE session_id = $1", [session.rawValue])[0].decode(0)
            #expect(sandboxes == 1)
        }
    }

    @Test func anOpenAICompatibleServerThatSendsNoToolCallIdsStillGetsEachCallRun() async throws {
        let script: JSONValue = ["turns": [
            ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo one"]]], "omit_ids": true],
            ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo two"]]], "omit_ids": true],
            E2E.say("Done."),
        ]]
        try await withCluster(script, args: ["--provider", "openai"]) { cluster in
            let session = try await cluster.session("no ids")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let ids = events.filter { $0.type == .agentToolUse }.compactMap { $0.json["id"]?.stringValue }
            #expect(ids.count == 2 && Set(ids).count == 2 && !ids.contains(""))
            #expect(events.filter { $0.type == .agentToolResult }.compactMap { $0.json["content"]?.stringValue } == ["one\n", "two\n"])
        }
    }

    @Test func aLongSessionReadsEachEventOnce() async throws {
        let turns: [JSONValue] = (1...8).map { E2E.tool("bash", ["command": .string("echo \($0)")]) } + [E2E.say("Done.")]
        try await withCluster(["turns": .array(turns)], args: ["--metrics-listen", "127.0.0.1:0"]) { cluster in
            let harness = try #require(cluster.harnessProcesses.first)
            let address = try #require(try await harness.waitForLog("metrics listening")["address"]?.stringValue)
            let session = try await cluster.session("many steps")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let read = try PrometheusText(try await PrometheusText.get(address, "/metrics").1).value("drover_log_events_read_total") ?? 0
            // Re-reading the log at every step would read about events²/4 (here over 600).
            #expect(read <= Double(events.count), "read \(read) events for a log of \(events.count)")
        }
    }

    /// A pool that stops answering (SIGSTOP: its sockets stay open, so only a deadline can tell)
    /// does not hold the session: the call ends as outcome unknown after the sandbox's timeout
    /// plus the client's margin, and the turn goes on.
    @Test func aCallToAStoppedPoolEndsAsOutcomeUnknownWithinItsDeadline() async throws {
        let script: JSONValue = ["turns": [E2E.tool("bash", ["command": "true"]), E2E.tool("bash", ["command": "sleep 1; echo late"]), E2E.say("Noted.")]]
        try await withCluster(script) { cluster in
            let environment = try await cluster.store.createEnvironment(name: "short", configJSON: #"{"resources":{"timeout_s":2}}"#)
            let session = try await cluster.store.createSession(agent: cluster.agent, environment: environment, firstMessage: JSONText.userMessage("stop the pool"))
            let use = try await cluster.waitForEvent(session) { $0.type == .agentToolUse && $0.payload.contains("sleep 1") }
            cluster.pool.daemon.signal(SIGSTOP)
            let stopped = ContinuousClock.now
            let id = try #require(use.json["id"]?.stringValue)
            let result = try await cluster.waitForEvent(session, timeout: 30) {
                $0.type == .agentToolResult && $0.json["tool_use_id"]?.stringValue == id
            }
            let waited = ContinuousClock.now - stopped
            cluster.pool.daemon.signal(SIGCONT)
            #expect(result.json["outcome"]?.stringValue == "unknown" && result.json["error"]?.stringValue == "timeout", "\(result.payload)")
            #expect(waited < .seconds(2 + PoolClient.margin + 3), "ended after \(waited)")
            let (reason, events) = try await cluster.waitForIdle(session, timeout: 30)
            #expect(reason == "end_turn")
            E2E.expectConsistent(events)
        }
    }

    /// Whether a process whose command line contains `marker` runs on this machine (sandboxed
    /// processes are in their own pid namespace, but the host sees them).
    static func processRunning(_ marker: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.contains { entry in
            guard entry.allSatisfy(\.isNumber), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return false }
            return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(marker)
        }
    }

    /// An interrupt ends the turn at once, and the tool's process with it: the harness sends the
    /// pool `cancel`, which kills the call's process tree.
    @Test func anInterruptKillsTheRunningToolProcess() async throws {
        let script: JSONValue = ["turns": [E2E.tool("bash", ["command": "sleep 97.25"]), E2E.say("Stopped.")]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("run forever")
            try await cluster.waitForEvent(session) { $0.type == .agentToolUse }
            let deadline = ContinuousClock.now + .seconds(10)
            while !Self.processRunning("sleep 97.25") && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(Self.processRunning("sleep 97.25"), "the tool's process started")
            try await cluster.store.send(session, type: .userInterrupt, payload: "{}")
            let interrupted = ContinuousClock.now
            while Self.processRunning("sleep 97.25") && ContinuousClock.now - interrupted < .seconds(5) { try await Task.sleep(for: .milliseconds(20)) }
            let gone = ContinuousClock.now - interrupted
            #expect(!Self.processRunning("sleep 97.25"))
            #expect(gone < .seconds(1), "the process was gone \(gone) after the interrupt")
            let (reason, _) = try await cluster.waitForIdle(session)
            #expect(reason == "interrupted")
        }
    }

    /// Claims the session as a harness named 'ghost' whose lease lasts a second, as a harness
    /// that is about to die would; returns its epoch. What it appends stays in the log.
    static func ghostClaim(_ cluster: HarnessCluster, _ session: SessionID) async throws -> Int64 {
        var rows = try await cluster.sql.query("SELECT session_id, lease_epoch FROM drover.claim('ghost', 1, 1000)")
        while rows.isEmpty {
            // The previous ghost's lease has not expired yet.
            try await Task.sleep(for: .milliseconds(100))
            rows = try await cluster.sql.query("SELECT session_id, lease_epoch FROM drover.claim('ghost', 1, 1000)")
        }
        #expect(try rows[0].decode(0) as String == session.rawValue)
        return try rows[0].decode(1)
    }
}
