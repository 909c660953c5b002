import DroverCore
import DroverModel
import Foundation
import Testing
@testable import DroverHarness

/// A workflow run as the planner reads it from the log: its plan checked, each step it takes
/// (every point a harness can stop at is a log here), its end, and what the agent reads of it.
@Suite struct WorkflowPlannerTests {
    typealias LogBuilder = TurnPlannerTests.LogBuilder
    static let planner = TurnPlannerTests.planner
    static let roster = [(name: "researcher", id: "agent_r", version: 2)]

    static let input: JSONValue = [
        "name": "survey",
        "phases": [
            ["name": "gather", "threads": [["agent": "researcher", "message": "find A"], ["inline": ["name": "helper", "system": "Help."], "message": "find B"]]],
            ["name": "write", "threads": [["agent": "researcher", "message": "summarise:\n{{previous}}"]]],
        ],
    ]

    static func plan() throws -> WorkflowPlan {
        try WorkflowPlan.parse(input, runID: "wfr_1", roster: roster, inline: true, ordinal: 1)
    }

    /// The coordinator's turn that started the run (its call and result, and the created event).
    static func started(_ b: inout LogBuilder) throws {
        b.user("survey it"); b.request(); b.answered()
        b.add(.agentToolUse, ["id": "t1", "name": .string(WorkflowPlan.startToolName), "input": input])
        b.add(.workflowRunCreated, try plan().createdPayload)
        b.result("t1")
        b.request(); b.answered(); b.say("Started.")
    }

    static func created(_ b: inout LogBuilder, _ thread: String, agent: String) {
        b.add(.sessionThreadCreated, ["session_thread_id": .string(thread), "agent_name": .string(agent), "workflow_run_id": "wfr_1"])
        b.add(.agentThreadMessageSent, ["to_session_thread_id": .string(thread), "to_agent_name": .string(agent), "content": []])
    }

    static func replied(_ b: inout LogBuilder, _ thread: String, agent: String, _ text: String) {
        b.add(.sessionThreadStatusIdle, ["session_thread_id": .string(thread), "agent_name": .string(agent)])
        b.add(.agentThreadMessageReceived, ["from_session_thread_id": .string(thread), "from_agent_name": .string(agent),
                                            "content": [["type": "text", "text": .string(text)]]])
    }

    static func write(_ b: inout LogBuilder, _ step: TurnStep) {
        guard case .advanceWorkflow(.write(let events)) = step else { Issue.record("not a write: \(step)"); return }
        for event in events { b.add(event.type, event.payload) }
    }

    @Test func aPlanIsCheckedAgainstTheRoster() throws {
        let plan = try Self.plan()
        #expect(plan.phases.map(\.name) == ["gather", "write"] && plan.phases[0].threads[1].inlineSystem == "Help." && plan.timeout == 1800)
        #expect(WorkflowPlan(created: plan.createdPayload) == plan, "the log keeps the plan whole")
        let refusals: [(JSONValue, Bool, String)] = [
            (["phases": []], true, "phases"),
            (["phases": [["name": "p", "threads": [["agent": "nobody", "message": "x"]]]]], true, "agent"),
            (["phases": [["name": "p", "threads": [["inline": ["name": "h", "system": "s"], "message": "x"]]]]], false, "inline agents are disabled"),
            (["phases": [["name": "p", "threads": []]]], true, "threads"),
            (["phases": [["name": "p", "threads": [["agent": "researcher", "message": ""]]]]], true, "message"),
            (["phases": [["name": "p", "threads": [["agent": "researcher", "message": "x"]]]], "timeout_s": 5000], true, "timeout_s"),
        ]
        for (input, inline, why) in refusals {
            #expect(throws: WorkflowPlan.Refusal.self, "\(why)") { try WorkflowPlan.parse(input, runID: "r", roster: Self.roster, inline: inline, ordinal: 1) }
            do { _ = try WorkflowPlan.parse(input, runID: "r", roster: Self.roster, inline: inline, ordinal: 1) } catch {
                #expect(error.message.contains(why), "\(error.message)")
            }
        }
    }

    /// Created → running and the first phase → its threads → (all replied) the next phase, whose
    /// task carries the replies → completed; the coordinator waits meanwhile and reads the end.
    @Test func aRunGoesPhaseByPhaseAndTheAgentReadsItsEnd() throws {
        var b = LogBuilder()
        try Self.started(&b)
        let plan = try Self.plan()
        guard case .advanceWorkflow(.write(let first)) = Self.planner.next(b.log) else { Issue.record("not started"); return }
        #expect(first.map(\.type) == [.workflowRunStatusRunning, .workflowRunPhaseStarted] && first[1].payload["workflow_run_phase_id"] == "wfr_1_phase0")
        Self.write(&b, Self.planner.next(b.log))
        guard case .advanceWorkflow(.spawn("wfr_1", let threads)) = Self.planner.next(b.log) else { Issue.record("no threads"); return }
        let (a, h) = (plan.threadID(phase: 0, index: 0), plan.threadID(phase: 0, index: 1))
        #expect(threads.map(\.thread) == [a, h] && threads[0].agentID == "agent_r" && threads[1].inlineSystem == "Help.")
        // A harness that died after the first thread started starts only the second.
        Self.created(&b, a, agent: "researcher")
        guard case .advanceWorkflow(.spawn(_, let rest)) = Self.planner.next(b.log) else { Issue.record("no second thread"); return }
        #expect(rest.map(\.thread) == [h])
        Self.created(&b, h, agent: "helper")
        #expect(Self.planner.next(b.log) == .awaitThreads([a, h, "wfr_1"]))
        // One reply is the run's, not the agent's: the agent is not called, the run waits.
        Self.replied(&b, a, agent: "researcher", "A is here.")
        #expect(Self.planner.next(b.log) == .awaitThreads([h, "wfr_1"]))
        Self.replied(&b, h, agent: "helper", "B is here.")
        guard case .advanceWorkflow(.write(let next)) = Self.planner.next(b.log) else { Issue.record("no next phase"); return }
        #expect(next.map(\.type) == [.workflowRunPhaseEnded, .workflowRunPhaseStarted])
        #expect(next[0].payload["phase_started_id"]?.stringValue == Event.apiID(uuid: "e11"), "the phase's start event: \(next[0].payload)")
        Self.write(&b, .advanceWorkflow(.write(next)))
        guard case .advanceWorkflow(.spawn(_, let writer)) = Self.planner.next(b.log) else { Issue.record("no phase 2 thread"); return }
        #expect(writer.count == 1 && writer[0].message.contains("- researcher (\(a)): A is here.") && writer[0].message.contains("B is here."))
        Self.created(&b, writer[0].thread, agent: "researcher")
        Self.replied(&b, writer[0].thread, agent: "researcher", "The summary.")
        guard case .advanceWorkflow(.end("wfr_1", let interrupt, let events)) = Self.planner.next(b.log) else { Issue.record("not ended"); return }
        #expect(interrupt.isEmpty && events.map(\.type) == [.workflowRunPhaseEnded, .workflowRunStatusEnded] && events[1].payload["result"] == ["type": "completed"])
        for event in events { b.add(event.type, event.payload) }
        // The end is input: the agent is called with the run's replies.
        guard case .callModel(let view, _) = Self.planner.next(b.log) else { Issue.record("the agent does not read the end"); return }
        guard case .text(let text)? = view.messages.last?.content.last else { Issue.record("no summary"); return }
        #expect(text.contains("wfr_1 (survey) completed") && text.contains("Phase 2: write") && text.contains("The summary."), "\(text)")
        #expect(!view.messages.contains { $0.content.contains(.text("Reply from thread \(a) (researcher):\nA is here.")) }, "a run's thread replies to the run")
        TurnPlannerTests.expectValid(view, "after a run")
    }

    /// A run past its timeout ends with `timeout_error`, its working threads interrupted; a stop
    /// ends it `stopped`; an ended run cannot end again.
    @Test func aRunTimesOutOrIsStopped() throws {
        var b = LogBuilder()
        try Self.started(&b)
        Self.write(&b, Self.planner.next(b.log))
        let plan = try Self.plan()
        Self.created(&b, plan.threadID(phase: 0, index: 0), agent: "researcher")
        Self.created(&b, plan.threadID(phase: 0, index: 1), agent: "helper")
        Self.replied(&b, plan.threadID(phase: 0, index: 1), agent: "helper", "B.")
        guard case .advanceWorkflow(.end(_, let interrupt, let events)) = Self.planner.next(b.log, now: Date().addingTimeInterval(1801)) else {
            Issue.record("no timeout"); return
        }
        #expect(interrupt == [plan.threadID(phase: 0, index: 0)])
        #expect(events.map(\.type) == [.workflowRunError, .workflowRunPhaseEnded, .workflowRunStatusEnded])
        #expect(events[0].payload["error"]?["type"] == "timeout_error" && events[2].payload["result"]?["error"]?["type"] == "timeout_error")
        guard case .end(_, _, let stop)? = b.log.workflows.ending("wfr_1", result: "stopped", error: nil) else { Issue.record("no stop"); return }
        #expect(stop.last?.payload["result"] == ["type": "stopped"])
        for event in stop { b.add(event.type, event.payload) }
        #expect(b.log.workflows.ending("wfr_1", result: "stopped", error: nil) == nil && b.log.workflows.openRuns.isEmpty)
        #expect(b.log.workflows.summary("wfr_1").contains("was stopped"))
    }
}
