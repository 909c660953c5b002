import DroverCore
import Foundation

/// What a coordinator's harness does next for one of its workflow runs (`WorkflowProgress.next`).
public enum WorkflowStep: Sendable, Equatable {
    /// Log these events: the run's status and phases.
    case write([Event])
    /// Start these threads of `run` (each idempotent by its id; they log their own start).
    case spawn(run: String, [ThreadStart])
    /// End `run`: interrupt those of its threads still working, then log `events`.
    case end(run: String, interrupt: [String], events: [Event])

    public struct Event: Sendable, Equatable {
        public var type: EventType
        public var payload: JSONValue
    }

    public struct ThreadStart: Sendable, Equatable {
        public var thread: String
        public var agent: String
        /// The roster agent's id and version (empty and 0: inline, with `inlineSystem`).
        public var agentID: String
        public var agentVersion: Int
        public var inlineSystem: String?
        public var message: String
    }
}

/// Where a session's workflow runs stand, folded from its log as events are appended
/// (`SessionLog.workflows`): each run's plan (from `workflow_run.created`), whether it is
/// running, the phase it is in, the threads it started (`session.thread_created` naming it) and
/// their replies, and whether it ended. The log is the only state: a harness that dies between
/// two steps of a run leaves its successor exactly the step to take next (`next`), and every
/// step is idempotent (thread ids are derived from the run, the phase and the order).
public struct WorkflowProgress: Sendable {
    struct Run: Sendable {
        var plan: WorkflowPlan
        var createdAt: Date
        var running = false
        /// The last phase started (-1: none yet), the id of its `workflow_run.phase_started`,
        /// and whether it is still open.
        var phase = -1
        var phaseStartedID: String?
        var phaseOpen = false
        /// The run's threads with their phase, in the order they started (the plan's); their
        /// replies (agent and text) by id.
        var threads: [(id: String, phase: Int)] = []
        var replies: [String: (agent: String, text: String)] = [:]
        var ended = false
        /// How it ended: `completed`, `stopped` or `error`, and the error's message.
        var result = ""
        var errorMessage: String?
    }

    private(set) var runs: [String: Run] = [:]
    /// Run ids in the order they were created.
    private(set) var order: [String] = []
    private var threadRuns: [String: String] = [:]
    /// The seq of the latest run's end (0: none): the agent reads it as input.
    public private(set) var lastEndSeq: Int64 = 0

    public init() {}

    /// Runs not yet ended, in order.
    public var openRuns: [String] { order.filter { runs[$0]?.ended == false } }

    /// The run a stop names: its `workflow_run_id`, else the latest run of its `name`.
    public func run(named input: JSONValue) -> String? {
        if let id = input["workflow_run_id"]?.stringValue, !id.isEmpty { return id }
        guard let name = input["name"]?.stringValue else { return nil }
        return order.last { runs[$0]?.plan.name == name }
    }

    /// Whether a thread was started by a workflow run (its reply is the run's, not the agent's).
    public func isWorkflowThread(_ thread: String) -> Bool { threadRuns[thread] != nil }

    /// Folds one entry of the log.
    mutating func apply(_ entry: SessionLog.Entry) {
        let json = entry.json
        let runID = json["workflow_run_id"]?.stringValue ?? ""
        switch entry.type {
        case .workflowRunCreated:
            guard let plan = WorkflowPlan(created: json), runs[plan.runID] == nil else { return }
            runs[plan.runID] = Run(plan: plan, createdAt: entry.event.createdAt)
            order.append(plan.runID)
        case .workflowRunStatusRunning:
            runs[runID]?.running = true
        case .workflowRunPhaseStarted:
            guard var run = runs[runID], let index = run.plan.phases.firstIndex(where: { $0.id == json["workflow_run_phase_id"]?.stringValue })
            else { return }
            run.phase = index
            run.phaseStartedID = entry.event.apiID
            run.phaseOpen = true
            runs[runID] = run
        case .workflowRunPhaseEnded:
            runs[runID]?.phaseOpen = false
        case .workflowRunStatusEnded:
            guard runs[runID] != nil else { return }
            runs[runID]?.ended = true
            runs[runID]?.result = json["result"]?["type"]?.stringValue ?? ""
            runs[runID]?.errorMessage = json["result"]?["error"]?["message"]?.stringValue
            lastEndSeq = entry.seq
        case .sessionThreadCreated:
            guard let thread = json["session_thread_id"]?.stringValue, let run = runs[runID] else { return }
            threadRuns[thread] = runID
            runs[runID]?.threads.append((thread, run.phase))
        case .agentThreadMessageReceived:
            guard let thread = json["from_session_thread_id"]?.stringValue, let runID = threadRuns[thread] else { return }
            runs[runID]?.replies[thread] = (json["from_agent_name"]?.stringValue ?? "", ContextView.Builder.text(json["content"]))
        default:
            return
        }
    }

    /// The step a run needs now, the first such run first; nil when every run waits for its
    /// threads (or none is open). `now` is read against a run's timeout.
    public func next(now: Date) -> WorkflowStep? {
        for runID in order {
            guard let run = runs[runID], !run.ended else { continue }
            let plan = run.plan
            if now.timeIntervalSince(run.createdAt) >= plan.timeout {
                return ending(runID, result: "error", error: ["type": "timeout_error", "message": .string(
                    "The run reached its time limit of \(Int(plan.timeout)) s.")])
            }
            if !run.running || run.phase < 0 {
                var events: [WorkflowStep.Event] = []
                if !run.running { events.append(.init(type: .workflowRunStatusRunning, payload: ["workflow_run_id": .string(runID)])) }
                events.append(phaseStarted(runID, plan.phases[0]))
                return .write(events)
            }
            guard run.phaseOpen else { continue }
            let phase = plan.phases[run.phase]
            let missing = phase.threads.indices.filter { index in
                !run.threads.contains { $0.id == plan.threadID(phase: run.phase, index: index) }
            }
            if !missing.isEmpty {
                let previous = run.phase > 0 ? replies(of: run, phase: run.phase - 1) : ""
                return .spawn(run: runID, missing.map { index in
                    let order = phase.threads[index]
                    return WorkflowStep.ThreadStart(
                        thread: plan.threadID(phase: run.phase, index: index), agent: order.agent, agentID: order.agentID,
                        agentVersion: order.agentVersion, inlineSystem: order.inlineSystem, message: WorkflowPlan.task(order, previous: previous))
                })
            }
            guard !run.threads.contains(where: { $0.phase == run.phase && run.replies[$0.id] == nil }) else { continue }
            if run.phase + 1 < plan.phases.count {
                return .write([phaseEnded(runID, run), phaseStarted(runID, plan.phases[run.phase + 1])])
            }
            return ending(runID, result: "completed", error: nil)
        }
        return nil
    }

    /// How run `runID` ends now (`result`: `completed`, `stopped` or `error` with `error`): its
    /// threads still working to interrupt, and the events, the open phase closed first. Nil when
    /// it is unknown or ended already.
    public func ending(_ runID: String, result: String, error: JSONValue?) -> WorkflowStep? {
        guard let run = runs[runID], !run.ended else { return nil }
        var events: [WorkflowStep.Event] = []
        var outcome: JSONValue = ["type": .string(result)]
        if let error {
            events.append(.init(type: .workflowRunError, payload: ["workflow_run_id": .string(runID), "error": error]))
            outcome = ["type": "error", "error": error]
        }
        if run.phaseOpen { events.append(phaseEnded(runID, run)) }
        events.append(.init(type: .workflowRunStatusEnded, payload: ["workflow_run_id": .string(runID), "result": outcome]))
        let working = run.threads.map(\.id).filter { run.replies[$0] == nil }
        return .end(run: runID, interrupt: working, events: events)
    }

    /// What the agent reads when a run ends: how, and its threads' replies, phase by phase.
    public func summary(_ runID: String) -> String {
        guard let run = runs[runID] else { return "Workflow run \(runID) ended." }
        let how = switch run.result {
        case "completed": "completed"
        case "stopped": "was stopped"
        default: "failed: \(run.errorMessage ?? "unknown error")"
        }
        var text = "Workflow run \(runID) (\(run.plan.name)) \(how)."
        for (index, phase) in run.plan.phases.enumerated() where run.threads.contains(where: { $0.phase == index }) {
            text += "\n\n## Phase \(index + 1): \(phase.name)\n" + replies(of: run, phase: index)
        }
        return text
    }

    /// The replies of a phase's threads, in the order they started (a thread cut off: no reply).
    private func replies(of run: Run, phase: Int) -> String {
        run.threads.filter { $0.phase == phase }.map { thread in
            guard let reply = run.replies[thread.id] else { return "- \(thread.id): (no reply)" }
            return "- \(reply.agent) (\(thread.id)): \(reply.text.isEmpty ? "(no message)" : reply.text)"
        }.joined(separator: "\n")
    }

    private func phaseStarted(_ runID: String, _ phase: WorkflowPlan.Phase) -> WorkflowStep.Event {
        .init(type: .workflowRunPhaseStarted, payload: ["workflow_run_id": .string(runID), "workflow_run_phase_id": .string(phase.id)])
    }

    private func phaseEnded(_ runID: String, _ run: Run) -> WorkflowStep.Event {
        .init(type: .workflowRunPhaseEnded, payload: [
            "workflow_run_id": .string(runID), "workflow_run_phase_id": .string(run.plan.phases[run.phase].id),
            "phase_started_id": .string(run.phaseStartedID ?? ""),
        ])
    }
}
