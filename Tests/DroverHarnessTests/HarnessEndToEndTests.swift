import DroverCore
import DroverIO
import DroverSandbox
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Real Postgres, real pool and harness processes, the scripted model server over HTTP.
@Suite(.serialized) struct HarnessEndToEndTests {
    func withCluster(_ script: JSONValue, harnesses: Int = 1, args: [String] = [], apiKey: String = "sk-test-key",
                     _ body: (HarnessCluster) async throws -> Void) async throws {
        let cluster = try await HarnessCluster.start(script: script, harnesses: harnesses, harnessArgs: args, apiKey: apiKey)
        do {
            try await body(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    static func tool(_ name: String, _ input: JSONValue, text: String? = nil, latency: Int = 0) -> JSONValue {
        var content: [JSONValue] = []
        if let text { content.append(["type": "text", "text": .string(text)]) }
        content.append(["type": "tool_use", "name": .string(name), "input": input])
        return ["content": .array(content), "latency_ms": .number(Double(latency))]
    }

    static func say(_ text: String, latency: Int = 0) -> JSONValue {
        ["content": [["type": "text", "text": .string(text)]], "latency_ms": .number(Double(latency))]
    }

    /// No two events alike where that would mean a double write; seqs contiguous.
    static func expectConsistent(_ events: [Event]) {
        #expect(events.map(\.seq) == Array(1...Int64(events.count)), "seq is contiguous")
        let uses = events.filter { $0.type == .agentToolUse }.compactMap { $0.json["id"]?.stringValue }
        let results = events.filter { $0.type == .agentToolResult }.compactMap { $0.json["tool_use_id"]?.stringValue }
        #expect(Set(uses).count == uses.count, "no tool use logged twice")
        #expect(Set(results).count == results.count, "no tool result logged twice")
        #expect(Set(results).isSubset(of: Set(uses)))
        var epoch: Int64 = 0
        for event in events {
            if let e = event.leaseEpoch {
                #expect(e >= epoch, "epochs never go back (seq \(event.seq))")
                epoch = e
            }
        }
    }

    @Test func aMultiTurnSessionWithEveryToolEndsWithTheExactEventSequence() async throws {
        let script: JSONValue = ["turns": [
            Self.tool("write", ["path": "app/hello.py", "content": "print('hello')\nprint('hello again')\n"], text: "Writing."),
            Self.tool("bash", ["command": "cat app/hello.py | wc -l"]),
            Self.tool("edit", ["path": "app/hello.py", "old_string": "hello again", "new_string": "bye"]),
            Self.tool("read", ["path": "app/hello.py"]),
            Self.tool("glob", ["pattern": "**/*.py"]),
            Self.tool("grep", ["pattern": "bye", "output_mode": "content"]),
            Self.say("All done."),
        ]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("build hello")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            var expected: [EventType] = [.userMessage, .sessionStatusRunning]
            let round: [EventType] = [.spanModelRequestStart, .spanModelRequestEnd]
            expected += round + [.agentMessage, .agentToolUse, .agentToolResult]
            for _ in 0..<5 { expected += round + [.agentToolUse, .agentToolResult] }
            expected += round + [.agentMessage, .sessionStatusIdle]
            #expect(events.map(\.type) == expected)
            let results = events.filter { $0.type == .agentToolResult }.map { $0.json["content"]?.stringValue ?? "" }
            #expect(results == [
                "wrote 36 bytes to app/hello.py", "2\n", "replaced 1 occurrence in app/hello.py",
                "     1\tprint('hello')\n     2\tprint('bye')\n", "/workspace/app/hello.py", "/workspace/app/hello.py:2:print('bye')\n",
            ])
            #expect(events.allSatisfy { $0.type.isUserSide ? $0.leaseEpoch == nil : $0.leaseEpoch == 1 })
            #expect(try await cluster.store.session(session).status == .idle)
            Self.expectConsistent(events)
        }
    }

    @Test func anOpenAICompatibleProviderRunsTheSameLoop() async throws {
        let script: JSONValue = ["turns": [Self.tool("bash", ["command": "echo from-openai"], text: "Running."), Self.say("Done.")]]
        try await withCluster(script, args: ["--provider", "openai"]) { cluster in
            let session = try await cluster.session("openai please")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            #expect(events.first { $0.type == .agentToolResult }?.json["content"]?.stringValue == "from-openai\n")
            #expect(events.contains { $0.type == .agentMessage && $0.payload.contains("Done.") })
            Self.expectConsistent(events)
        }
    }

    @Test func noSandboxIsProvisionedForASessionWithoutToolCalls() async throws {
        try await withCluster(["turns": [Self.say("Just words.")]]) { cluster in
            let session = try await cluster.session("talk only")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            #expect(!events.contains { $0.type == .agentToolUse })
            let sandboxes: Int = try await cluster.sql.query("SELECT count(*) FROM drover.sandboxes")[0].decode(0)
            #expect(sandboxes == 0)
            let client = try await cluster.pool.client()
            #expect(try await client.request("stats")["sandboxes"]?.intValue == 0)
            client.close()
        }
    }

    static let effectScript: JSONValue = ["turns": [
        tool("bash", ["command": "echo \"$(date +%s%N) first\" >> effects.log"]),
        tool("bash", ["command": "echo start >> effects.log; sleep 3; echo end >> effects.log"], latency: 3000),
        tool("bash", ["command": "echo third >> effects.log; cat effects.log"]),
        say("Finished.", latency: 200),
    ]]

    /// SIGKILLs whichever harness holds the lease once `trigger` appears in the log.
    func killHolder(_ cluster: HarnessCluster, _ session: SessionID, when trigger: @escaping (Event) -> Bool) async throws -> Int64 {
        let event = try await cluster.waitForEvent(session, trigger)
        let victim = try #require(try await cluster.holder(of: session))
        victim.signal(SIGKILL)
        _ = await victim.wait(timeout: 5)
        return event.leaseEpoch ?? 0
    }

    @Test func sigkillDuringAModelCallAnotherHarnessFinishesWithNothingTwice() async throws {
        try await withCluster(Self.effectScript, harnesses: 2) { cluster in
            let session = try await cluster.session("effects")
            // Turn 2's model call takes 3 s: kill the holder in the middle of it.
            let epoch = try await killHolder(cluster, session) { $0.type == .spanModelRequestStart && $0.json["turn"]?.intValue == 2 }
            let (reason, events) = try await cluster.waitForIdle(session, timeout: 45)
            #expect(reason == "end_turn")
            #expect(events.contains { ($0.leaseEpoch ?? 0) > epoch })
            Self.expectConsistent(events)
            let log = events.last { $0.type == .agentToolResult }?.json["content"]?.stringValue ?? ""
            #expect(log.components(separatedBy: "first").count - 1 == 1, "\(log)")
            #expect(log.components(separatedBy: "start").count - 1 == 1, "\(log)")
            #expect(log.hasSuffix("end\nthird\n"), "\(log)")
        }
    }

    @Test func sigkillDuringALongToolCallTheToolRunsOnce() async throws {
        try await withCluster(Self.effectScript, harnesses: 2) { cluster in
            let session = try await cluster.session("effects")
            // Kill the holder while the 3 s bash call runs (logged, no result yet).
            let use = try await cluster.waitForEvent(session) { $0.type == .agentToolUse && ($0.json["input"]?["command"]?.stringValue ?? "").contains("sleep 3") }
            try await Task.sleep(for: .milliseconds(500))
            let victim = try #require(try await cluster.holder(of: session))
            victim.signal(SIGKILL)
            let (reason, events) = try await cluster.waitForIdle(session, timeout: 45)
            #expect(reason == "end_turn")
            Self.expectConsistent(events)
            let result = try #require(events.first { $0.type == .agentToolResult && $0.json["tool_use_id"] == use.json["id"] })
            #expect((result.leaseEpoch ?? 0) > (use.leaseEpoch ?? 0), "the successor logged the result")
            let log = events.last { $0.type == .agentToolResult }?.json["content"]?.stringValue ?? ""
            #expect(log.components(separatedBy: "start").count - 1 == 1, "the long call ran once: \(log)")
            #expect(log.hasSuffix("start\nend\nthird\n"), "\(log)")
        }
    }

    @Test func aStoppedHarnessPastItsLeaseWritesNothingAfterItContinues() async throws {
        let script: JSONValue = ["turns": [Self.say("slow answer", latency: 2500), Self.say("more")]]
        try await withCluster(script, harnesses: 2) { cluster in
            let session = try await cluster.session("pause me")
            let start = try await cluster.waitForEvent(session) { $0.type == .spanModelRequestStart }
            let paused = try #require(try await cluster.holder(of: session))
            paused.signal(SIGSTOP)
            let (reason, _) = try await cluster.waitForIdle(session, timeout: 30)
            #expect(reason == "end_turn")
            paused.signal(SIGCONT)
            try await Task.sleep(for: .seconds(3))
            let events = try await cluster.events(session)
            let staleEpoch = try #require(start.leaseEpoch)
            let takeover = try #require(events.first { ($0.leaseEpoch ?? 0) > staleEpoch })
            #expect(!events.contains { $0.leaseEpoch == staleEpoch && $0.seq > takeover.seq }, "the paused harness wrote after the takeover")
            #expect(events.last?.type == .sessionStatusIdle)
            Self.expectConsistent(events)
            #expect(paused.isRunning, "the harness survives losing a lease")
            // A paused harness keeps its connection, and so its liveness lock: only the TTL ended it.
            let cause: String? = try await cluster.sql.query(
                "SELECT cause FROM drover.lease_history WHERE session_id = $1 AND epoch = $2", [session.rawValue, staleEpoch + 1])[0].decode(0)
            #expect(cause == "expired")
        }
    }

    @Test func anInterruptDuringALongToolCallEndsTheTurnPromptly() async throws {
        let script: JSONValue = ["turns": [Self.tool("bash", ["command": "sleep 30"]), Self.say("should not be reached")]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("long job")
            try await cluster.waitForEvent(session) { $0.type == .agentToolUse }
            try await Task.sleep(for: .milliseconds(300))
            let sent = ContinuousClock.now
            try await cluster.store.send(session, type: .userInterrupt, payload: "{}")
            let (reason, events) = try await cluster.waitForIdle(session, timeout: 20)
            #expect(reason == "interrupted")
            #expect(ContinuousClock.now - sent < .seconds(3))
            let result = try #require(events.first { $0.type == .agentToolResult })
            #expect(result.json["is_error"]?.boolValue == true)
            #expect(events.filter { $0.type == .spanModelRequestStart }.count == 1)
            Self.expectConsistent(events)
        }
    }

    @Test func messagesSentMidTurnAreTakenAtTheNextTurnBoundary() async throws {
        let script: JSONValue = ["turns": [
            Self.tool("bash", ["command": "sleep 1; echo working"]), Self.say("First task done.", latency: 1500),
            Self.say("About your last message: yes."),
        ]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("first task")
            // One message while the tool runs: it goes into the next model request.
            try await cluster.waitForEvent(session) { $0.type == .agentToolUse }
            let duringTool = try await cluster.store.send(session, type: .userMessage, payload: JSONText.userMessage("also this"))
            // One while the last model call is in flight: the turn would end, so a new turn answers it.
            try await cluster.waitForEvent(session) { $0.type == .spanModelRequestStart && $0.json["turn"]?.intValue == 2 }
            let duringModel = try await cluster.store.send(session, type: .userMessage, payload: JSONText.userMessage("and one more"))
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let requests = events.filter { $0.type == .spanModelRequestStart }.map(\.seq)
            #expect(requests.count == 3)
            #expect(duringTool.seq < requests[1], "the message sent during the tool call was in the second request")
            #expect(duringModel.seq > requests[1] && duringModel.seq < requests[2], "the last message got a turn of its own")
            let messages = events.filter { $0.type == .agentMessage }.map { $0.json["content"]?[0]?["text"]?.stringValue ?? "" }
            #expect(messages == ["First task done.", "About your last message: yes."])
            #expect(events.filter { $0.type == .sessionStatusIdle }.count == 1)
            Self.expectConsistent(events)
        }
    }

    @Test func retriesRateLimitsAndOverloadAndAMalformedStreamEndsOnlyItsSession() async throws {
        let script: JSONValue = [
            "turns": [["failures": [["status": 429, "retry_after": 1], ["status": 529]], "content": [["type": "text", "text": "made it"]]]],
            "variants": [["match": "BROKEN", "turns": [["malformed": true]]]],
        ]
        try await withCluster(script) { cluster in
            let broken = try await cluster.session("BROKEN stream please")
            let healthy = try await cluster.session("a normal one")
            let (brokenReason, brokenEvents) = try await cluster.waitForIdle(broken)
            #expect(brokenReason == "error")
            let error = try #require(brokenEvents.first { $0.type == .sessionError })
            #expect(error.json["error"]?["type"]?.stringValue == "model_malformed_stream")
            let (reason, events) = try await cluster.waitForIdle(healthy, timeout: 30)
            #expect(reason == "end_turn")
            #expect(events.contains { $0.type == .agentMessage && $0.payload.contains("made it") })
            // The harness keeps serving: a third session after both.
            let third = try await cluster.session("a third")
            #expect(try await cluster.waitForIdle(third).stopReason == "end_turn")
            #expect(cluster.harnessProcesses.allSatisfy { $0.isRunning })
        }
    }

    @Test func aLogOverTheContextBudgetIsViewedCompactedAndTheLogKeepsEverything() async throws {
        let script: JSONValue = ["turns": [
            Self.tool("bash", ["command": "seq 1 3000"]), Self.tool("bash", ["command": "seq 1 3000"]), Self.say("Seen enough."),
        ]]
        try await withCluster(script, args: ["--context-budget", "1000"]) { cluster in
            let session = try await cluster.session("count")
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let compacted = try #require(events.first { $0.type == .agentThreadContextCompacted })
            guard case .array(let elided)? = compacted.json["elided_tool_results"] else { Issue.record("no list"); return }
            #expect(!elided.isEmpty)
            // The log still has every byte of the output the view left out.
            let full = events.first { $0.type == .agentToolResult }?.json["content"]?.stringValue ?? ""
            #expect(full.hasSuffix("2999\n3000\n"))
            Self.expectConsistent(events)
        }
    }

    @Test func aSessionStopsAtItsTokenBudget() async throws {
        let script: JSONValue = ["turns": [Self.tool("bash", ["command": "true"]), Self.tool("bash", ["command": "true"]), Self.say("never")]]
        try await withCluster(script) { cluster in
            let agent = try await cluster.store.createAgent(name: "frugal", model: "scripted", configJSON: #"{"token_budget": 1}"#)
            let session = try await cluster.store.createSession(
                agent: agent, environment: cluster.environment, firstMessage: JSONText.userMessage("spend"))
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "budget_reached")
            #expect(events.filter { $0.type == .spanModelRequestStart }.count == 1)
            Self.expectConsistent(events)
        }
    }

    @Test func aSandboxThatDiesIsReportedAndTheNextCallGetsANewOne() async throws {
        let script: JSONValue = ["turns": [
            Self.tool("bash", ["command": "echo kept > f.txt"]),
            Self.tool("bash", ["command": "cat f.txt"], latency: 1000),
            Self.tool("bash", ["command": "ls; echo fresh"]),
            Self.say("Recovered."),
        ]]
        try await withCluster(script) { cluster in
            let session = try await cluster.session("survive a lost sandbox")
            try await cluster.waitForEvent(session) { $0.type == .spanModelRequestStart && $0.json["turn"]?.intValue == 2 }
            // The sandbox dies while the model thinks.
            let registry = PoolRegistry(pool: cluster.sql)
            let placed = try #require(try await registry.sandbox(forSession: session.rawValue))
            let client = try await cluster.pool.client()
            try await client.destroy(sandbox: placed.sandbox)
            client.close()
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let results = events.filter { $0.type == .agentToolResult }
            #expect(results.count == 3)
            #expect(results[1].json["is_error"]?.boolValue == true)
            #expect(results[1].json["content"]?.stringValue?.hasPrefix("The sandbox is gone") == true)
            #expect(results[2].json["content"]?.stringValue == "fresh\n", "a new, empty sandbox")
            #expect(results[2].json["sandbox"] != results[0].json["sandbox"])
            Self.expectConsistent(events)
        }
    }

    @Test func theAPIKeyAppearsNowhere() async throws {
        let key = "sk-ant-drover-test-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let script: JSONValue = ["turns": [Self.tool("bash", ["command": "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"]), Self.say("ok")]]
        try await withCluster(script, apiKey: key) { cluster in
            let session = try await cluster.session("show me the environment")
            let (_, events) = try await cluster.waitForIdle(session)
            let leaked: Int = try await cluster.sql.query(
                "SELECT count(*) FROM drover.events WHERE payload::text LIKE '%' || $1 || '%'", [key])[0].decode(0)
            #expect(leaked == 0)
            #expect(!events.contains { $0.payload.contains(key) })
            let env = events.first { $0.type == .agentToolResult }?.json["content"]?.stringValue ?? ""
            #expect(env.contains("PATH=") && !env.contains(key) && !env.contains("ANTHROPIC"))
            for harness in cluster.harnessProcesses { #expect(!harness.log.contains(key)) }
            #expect(!cluster.pool.daemon.log.contains(key))
        }
    }

    @Test func sigtermHandsTheSessionToAnotherHarnessWithinASecond() async throws {
        let script: JSONValue = ["turns": [Self.say("slow", latency: 3000), Self.say("after the hand-off")]]
        try await withCluster(script, harnesses: 2, args: ["--grace", "0.3", "--lease-ttl", "30"]) { cluster in
            let session = try await cluster.session("hand me off")
            let start = try await cluster.waitForEvent(session) { $0.type == .spanModelRequestStart }
            let leaving = try #require(try await cluster.holder(of: session))
            leaving.signal(SIGTERM)
            #expect(await leaving.wait(timeout: 10) == 0)
            let exited = Date()
            // A 30 s TTL: only the hand-off can explain a quick resume.
            let resumed = try await cluster.waitForEvent(session, timeout: 10) { ($0.leaseEpoch ?? 0) > (start.leaseEpoch ?? 0) }
            let acquired = try #require(try await cluster.store.session(session).leaseAcquiredAt ?? resumed.createdAt as Date?)
            #expect(acquired.timeIntervalSince(exited) < 1.0, "resumed \(acquired.timeIntervalSince(exited)) s after the exit")
            #expect(try await cluster.waitForIdle(session).stopReason == "end_turn")
            #expect(leaving.log.contains("session handed off"))
        }
    }
}
