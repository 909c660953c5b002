import DroverCore
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Issue #25, outcomes: the scripted model plays the agent and the grader. Grader requests end
/// with their rubric and iteration, so its variants (listed first) match them; the agent's
/// match the task (Tests/sdk/outcomes.py).
@Suite(.serialized) struct OutcomeTests {
    static func verdict(_ result: String, _ explanation: String) -> JSONValue {
        ["content": [["type": "tool_use", "name": "record_verdict", "input": ["result": .string(result), "explanation": .string(explanation)]]]]
    }

    /// A turn that starts a workflow run named `name` of one slow thread.
    static func startSlowRun(_ name: String) -> JSONValue {
        ["content": [["type": "tool_use", "name": "start_workflow_run", "input": [
            "name": .string(name), "phases": [["name": "wait", "threads": [["agent": "researcher", "message": "wf slow task"]]]]]]]]
    }

    static let script: JSONValue = [
        "turns": [["content": [["type": "text", "text": "Done."]]]],
        "variants": [
            ["match": "RUBRIC-PASS-ON-THIRD\nIteration: 0", "turns": [verdict("needs_revision", "It does not say DONE.")]],
            ["match": "RUBRIC-PASS-ON-THIRD\nIteration: 1", "turns": [verdict("needs_revision", "Still no DONE.")]],
            ["match": "RUBRIC-PASS-ON-THIRD\nIteration: 2", "turns": [verdict("satisfied", "It says DONE.")]],
            ["match": "RUBRIC-NEVER\nIteration:", "turns": [verdict("needs_revision", "Not yet.")]],
            ["match": "RUBRIC-SLOW\nIteration:", "turns": [["latency_ms": 20_000, "content": verdict("satisfied", "Late.")["content"]!]]],
            ["match": "RUBRIC-KILLED\nIteration:", "turns": [["latency_ms": 2_000, "content": verdict("satisfied", "Graded after all.")["content"]!]]],
            ["match": "revise twice", "turns": [
                ["content": [["type": "text", "text": "Draft one."]]], ["content": [["type": "text", "text": "Draft two."]]],
                ["content": [["type": "text", "text": "Draft three: DONE."]]],
            ]],
            ["match": "never good enough", "turns": [
                ["content": [["type": "text", "text": "Verse one."]]], ["content": [["type": "text", "text": "Verse two."]]],
                ["content": [["type": "text", "text": "Understood: no more revisions."]]],
            ]],
            ["match": "slow grader", "turns": [["content": [["type": "text", "text": "A summary."]]]]],
            ["match": "grader dies", "turns": [["content": [["type": "text", "text": "The work."]]]]],
            // Session threads: a coordinator starts workers, which each run a tool in the
            // session's sandbox (they read the coordinator's note) and report.
            ["match": "coordinate the work", "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo coordinator-note > note.txt"]]]],
                ["content": [["type": "tool_use", "name": "create_thread", "input": ["agent": "worker", "message": "task A for the worker"]],
                             ["type": "tool_use", "name": "create_thread", "input": ["agent": "worker", "message": "task B for the worker"]]]],
                ["content": [["type": "text", "text": "Waiting for the threads."]]],
                ["content": [["type": "text", "text": "One reply in."]]],
                ["content": [["type": "text", "text": "Both threads reported."]]],
            ]],
            ["match": "coordinate slowly", "turns": [
                ["content": [["type": "tool_use", "name": "create_thread", "input": ["agent": "worker", "message": "slow task for the worker"]]]],
                ["content": [["type": "text", "text": "Waiting."]]],
                ["content": [["type": "text", "text": "The slow thread reported."]]],
            ]],
            ["match": "coordinate twice", "turns": [
                ["content": [["type": "tool_use", "name": "create_thread", "input": ["agent": "worker", "message": "count task for the worker"]]]],
                ["content": [["type": "text", "text": "Waiting."]]],
                ["content": [["type": "tool_use", "name": "message_thread", "input": ["agent": "worker", "message": "again please"]]]],
                ["content": [["type": "text", "text": "Waiting again."]]],
                ["content": [["type": "text", "text": "Twice done."]]],
            ]],
            ["match": "plan with a helper", "turns": [
                ["content": [["type": "tool_use", "name": "create_thread",
                              "input": ["inline": ["name": "helper", "system": "You help."], "message": "inline task for the helper"]]]],
                ["content": [["type": "text", "text": "Waiting."]]],
                ["content": [["type": "text", "text": "The helper answered."]]],
            ]],
            ["match": "inline task for the helper", "turns": [["latency_ms": 500, "content": [["type": "text", "text": "Helped."]]]]],
            ["match": "ask the advisor", "turns": [
                ["content": [["type": "tool_use", "name": "consult_advisor", "input": ["question": "ADVISOR-Q: should I use a queue?"]]]],
                ["content": [["type": "text", "text": "Following the advice."]]],
            ]],
            ["match": "ADVISOR-Q", "turns": [["content": [["type": "text", "text": "Yes: use Postgres."]]]]],
            ["match": "count task for the worker", "turns": [
                ["latency_ms": 1_000, "content": [["type": "text", "text": "First answer."]]],
                ["latency_ms": 1_000, "content": [["type": "text", "text": "Second answer."]]],
            ]],
            // Workflow runs: a two-phase plan (a roster agent and an inline one, then a writer
            // given their replies); a refused plan; a run stopped while its thread works.
            ["match": "run the survey workflow", "turns": [
                ["content": [["type": "tool_use", "name": "start_workflow_run", "input": [
                    "name": "survey", "description": "Gather, then write.",
                    "phases": [
                        ["name": "gather", "threads": [["agent": "researcher", "message": "wf gather A"],
                                                       ["inline": ["name": "helper", "system": "You gather."], "message": "wf gather B"]]],
                        ["name": "write", "description": "One report.", "threads": [["agent": "researcher", "message": "wf write from:\n{{previous}}"]]],
                    ],
                ]]]],
                ["content": [["type": "text", "text": "The run is under way."]]],
                ["content": [["type": "text", "text": "The survey is complete."]]],
            ]],
            ["match": "run a bad workflow", "turns": [
                ["content": [["type": "tool_use", "name": "start_workflow_run", "input": [
                    "name": "bad", "phases": [["name": "only", "threads": [["agent": "nobody", "message": "x"]]]]]]]],
                ["content": [["type": "text", "text": "The plan was refused."]]],
            ]],
            ["match": "run a long workflow", "turns": [
                ["content": [["type": "tool_use", "name": "start_workflow_run", "input": [
                    "name": "long", "phases": [["name": "wait", "threads": [["agent": "researcher", "message": "wf slow task"]]]]]]]],
                ["content": [["type": "tool_use", "name": "stop_workflow_run", "input": ["name": "long"]]]],
                ["content": [["type": "text", "text": "Stopped it."]]],
            ]],
            ["match": "run too many workflows", "turns": [
                startSlowRun("r1"), startSlowRun("r2"), startSlowRun("r3"), startSlowRun("r4"),
                ["content": [["type": "tool_use", "name": "stop_workflow_run", "input": ["name": "r1"]],
                             ["type": "tool_use", "name": "stop_workflow_run", "input": ["name": "r2"]],
                             ["type": "tool_use", "name": "stop_workflow_run", "input": ["name": "r3"]]]],
                ["content": [["type": "text", "text": "Stopped them."]]],
            ]],
            ["match": "run the slow survey", "turns": [
                ["content": [["type": "tool_use", "name": "start_workflow_run", "input": [
                    "name": "slow survey",
                    "phases": [["name": "gather", "threads": [["agent": "researcher", "message": "wf slow gather"]]],
                               ["name": "write", "threads": [["agent": "researcher", "message": "wf write from:\n{{previous}}"]]]],
                ]]]],
                ["content": [["type": "text", "text": "The run is under way."]]],
                ["content": [["type": "text", "text": "The slow survey is complete."]]],
            ]],
            ["match": "wf slow gather", "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "sleep 2; echo gathered-A | tee gathered.txt"]]]],
                ["content": [["type": "text", "text": "Slowly gathered."]]],
            ]],
            ["match": "wf gather A", "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo gathered-A | tee gathered.txt"]]]],
                ["content": [["type": "text", "text": "A gathered."]]],
            ]],
            ["match": "wf gather B", "turns": [["latency_ms": 300, "content": [["type": "text", "text": "B gathered."]]]]],
            ["match": "wf write from", "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "cat gathered.txt"]]]],
                ["content": [["type": "text", "text": "Report written."]]],
            ]],
            ["match": "wf slow task", "turns": [["latency_ms": 30_000, "content": [["type": "text", "text": "Too late."]]]]],
            ["match": "task A for the worker", "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "cat note.txt; echo A-done | tee /mnt/session/outputs/a.txt"]]]], ["content": [["type": "text", "text": "A is done."]]],
            ]],
            ["match": "task B for the worker", "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "cat note.txt; echo B-done"]]]], ["content": [["type": "text", "text": "B is done."]]],
            ]],
            ["match": "slow task for the worker", "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "sleep 2; echo once >> /tmp/ran; cat /tmp/ran | wc -l"]]]],
                ["content": [["type": "text", "text": "Slow is done."]]],
            ]],
        ],
    ]

    @Test func outcomesAreGradedRevisedAndSettled() async throws {
        try await Self.runScript("Tests/sdk/outcomes.py", org: "outcomes", apiArgs: ["--allow-internal", "127.0.0.1/32"])
    }

    /// Runs one of the SDK scripts against a cluster playing `script`; the model refused nothing
    /// and `drover verify` holds after it.
    static func runScript(_ path: String, org: String, apiArgs: [String] = []) async throws {
        try await APIRig.withClusterAndAPI(script: Self.script, apiArgs: apiArgs) { cluster, api in
            let key = try await api.key(org: org)
            try await APIRig.python(path, environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY": key])
            try await RenderAgreement.check(cluster.sql)
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
            let verify = try await DroverProcess.run(["verify"], database: cluster.database.conninfo)
            #expect(verify.status == 0, "drover verify: \(verify.stdout) \(verify.stderr)")
        }
    }

    /// Issue #25, session threads: a coordinator starts two threads that each run a tool and
    /// report back, read through the SDK's threads resource (Tests/sdk/threads.py).
    @Test func aCoordinatorsThreadsRunAndReportBack() async throws {
        try await Self.runScript("Tests/sdk/threads.py", org: "threads")
    }

    /// Issue #25, workflow runs: a two-phase run of a roster agent and an inline one, a refused
    /// plan, a stopped run (Tests/sdk/workflows.py).
    @Test func aWorkflowRunGoesPhaseByPhase() async throws {
        try await Self.runScript("Tests/sdk/workflows.py", org: "workflows")
    }

    /// The harness running a thread's tool call is SIGKILLed: the other harness resumes the
    /// thread (the call is not run twice), the thread reports, the coordinator finishes.
    @Test func aHarnessKilledMidThreadLosesNothing() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script, harnesses: 2) { cluster, api in
            let key = try await api.key(org: "thread-kill")
            let printed = try await APIRig.python(
                "Tests/sdk/thread_start.py", [], environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY": key], checks: false)
            let session = SessionID(printed.trimmingCharacters(in: .whitespacesAndNewlines))
            let created = try await cluster.waitForEvent(session) { $0.type == .sessionThreadCreated }
            let thread = SessionID(try #require(try JSONValue.parse(created.payload)["session_thread_id"]?.stringValue))
            try await cluster.waitForEvent(thread) { $0.type == .agentToolUse }
            let victim = try #require(try await cluster.holder(of: thread))
            victim.signal(SIGKILL)
            let (stop, events) = try await cluster.waitForIdle(session, timeout: 60)
            #expect(stop == "end_turn" && events.filter { $0.type == .agentThreadMessageReceived }.count == 1, "\(events.map(\.type))")
            let threadEvents = try await cluster.events(thread)
            let results = threadEvents.filter { $0.type == .agentToolResult }
            #expect(results.count == 1 && (results.first?.payload.contains("1\\n") ?? false), "the call ran once: \(results.map(\.payload))")
            #expect(threadEvents.contains { $0.type == .sessionStatusRescheduled }, "the thread was resumed by the other harness")
            let verify = try await DroverProcess.run(["verify"], database: cluster.database.conninfo)
            #expect(verify.status == 0, "drover verify: \(verify.stdout) \(verify.stderr)")
        }
    }

    /// The harness holding a coordinator whose workflow run waits for its first phase is
    /// SIGKILLed: the other harness takes the session over and the run goes on from the log,
    /// every step once (one start and one end of each phase, each thread started once, one end of
    /// the run), and `drover verify` holds.
    @Test func aHarnessKilledMidRunLeavesTheRunToTheNext() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script, harnesses: 2) { cluster, api in
            let key = try await api.key(org: "workflow-kill")
            let printed = try await APIRig.python(
                "Tests/sdk/thread_start.py", ["workflow"], environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY": key], checks: false)
            let session = SessionID(printed.trimmingCharacters(in: .whitespacesAndNewlines))
            try await cluster.waitForEvent(session) { $0.type == .sessionThreadCreated }
            let victim = try #require(try await cluster.holder(of: session))
            victim.signal(SIGKILL)
            let (stop, events) = try await cluster.waitForIdle(session, timeout: 60)
            func count(_ type: EventType) -> Int { events.filter { $0.type == type }.count }
            #expect(stop == "end_turn" && count(.workflowRunCreated) == 1 && count(.workflowRunStatusRunning) == 1, "\(events.map(\.type))")
            #expect(count(.workflowRunPhaseStarted) == 2 && count(.workflowRunPhaseEnded) == 2 && count(.sessionThreadCreated) == 2, "\(events.map(\.type))")
            let ended = events.filter { $0.type == .workflowRunStatusEnded }.map { try? JSONValue.parse($0.payload) }
            #expect(ended.count == 1 && ended.first??["result"] == ["type": "completed"], "\(ended)")
            #expect(events.contains { $0.type == .sessionStatusRescheduled }, "the session was resumed by the other harness")
            let messages = events.filter { $0.type == .agentMessage }.compactMap { try? JSONValue.parse($0.payload)["content"]?[0]?["text"]?.stringValue }
            #expect(messages.last == "The slow survey is complete.", "\(messages)")
            let verify = try await DroverProcess.run(["verify"], database: cluster.database.conninfo)
            #expect(verify.status == 0, "drover verify: \(verify.stdout) \(verify.stderr)")
        }
    }

    /// The harness grading an outcome is SIGKILLed mid-evaluation: the other harness takes the
    /// session over and grades the same iteration under the start already logged; nothing is
    /// logged twice and `drover verify` holds.
    @Test func aHarnessKilledWhileGradingIsResumedByAnother() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script, harnesses: 2) { cluster, api in
            let key = try await api.key(org: "outcome-kill")
            let printed = try await APIRig.python(
                "Tests/sdk/outcome_define.py", ["Write it (the grader dies)", "RUBRIC-KILLED"],
                environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY": key], checks: false)
            let session = SessionID(printed.trimmingCharacters(in: .whitespacesAndNewlines))
            try await cluster.waitForEvent(session) { $0.type == .spanOutcomeEvaluationStart }
            let victim = try #require(try await cluster.holder(of: session))
            victim.signal(SIGKILL)
            let (stop, events) = try await cluster.waitForIdle(session, timeout: 60)
            let starts = events.filter { $0.type == .spanOutcomeEvaluationStart }
            let ends = events.filter { $0.type == .spanOutcomeEvaluationEnd }.map { try? JSONValue.parse($0.payload) }
            #expect(stop == "end_turn" && starts.count == 1 && ends.count == 1, "\(events.map(\.type))")
            #expect(ends.first??["result"] == "satisfied" && ends.first??["outcome_evaluation_start_id"]?.stringValue == starts.first?.apiID)
            #expect(events.filter { $0.type == .agentMessage }.count == 1, "the agent's work is not done again")
            let verify = try await DroverProcess.run(["verify"], database: cluster.database.conninfo)
            #expect(verify.status == 0, "drover verify: \(verify.stdout) \(verify.stderr)")
        }
    }
}
