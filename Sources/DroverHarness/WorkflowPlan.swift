import DroverCore
import DroverModel
import DroverStore

/// A workflow run's plan: the program the agent writes when it starts a run
/// (`multiagent.workflows`). The plan is a list of phases run in order; each phase starts its
/// threads at once (each an agent of the workflow roster, or an inline agent where those are
/// enabled, with its task), and the next phase begins when every thread of this one has replied.
/// A task may say `{{previous}}`, which becomes the previous phase's replies: phases are a
/// pipeline. The run is background work: the tool's result comes at once, and the run's end
/// (`workflow_run.status_ended`) is what the agent later reads, with its threads' replies.
///
/// Pure: checked here (a refusal is the SDK's `program_error`), logged whole on
/// `workflow_run.created` (`drover_plan`, agents resolved to their versions), and read back from
/// the log by `WorkflowProgress`, so a harness that takes the session over runs the same plan.
struct WorkflowPlan: Sendable, Equatable {
    struct Order: Sendable, Equatable {
        var agent: String
        /// The roster agent's id and version; empty and 0 for an inline agent.
        var agentID: String
        var agentVersion: Int
        /// An inline agent's system prompt (nil: a roster agent).
        var inlineSystem: String?
        var message: String
    }

    struct Phase: Sendable, Equatable {
        var id: String
        var name: String
        var description: String?
        var threads: [Order]
    }

    var runID: String
    var name: String
    var description: String?
    var phases: [Phase]
    /// Seconds from the run's creation to its `timeout_error`.
    var timeout: Double

    static let startToolName = "start_workflow_run"
    static let stopToolName = "stop_workflow_run"
    static let maxPhases = 10
    static let maxThreadsPerPhase = 8
    /// Runs open at once per session: one more is refused with `max_workflow_runs_error`.
    static let maxOpenRuns = 3
    static let defaultTimeout: Double = 1800
    static let maxTimeout: Double = 3600
    static let previousMarker = "{{previous}}"

    /// The tools, where the agent's `workflows` are enabled (nil in a thread: one level only).
    static func tools(roster: [(name: String, id: String, version: Int)], inline: Bool, session: SessionID) -> [ToolDefinition]? {
        guard !roster.isEmpty || inline, !session.rawValue.hasPrefix(SessionStore.threadPrefix) else { return nil }
        let thread = SessionThreads.agentChoice(roster: roster, inline: inline).merging(
            ["message": ["type": "string", "description": "The thread's task; {{previous}} is replaced by the previous phase's replies."]]) { $1 }
        let phase: JSONValue = [
            "type": "object",
            "properties": [
                "name": ["type": "string"], "description": ["type": "string"],
                "threads": ["type": "array", "items": ["type": "object", "properties": .object(thread), "required": ["message"]],
                            "description": "Started together; the next phase begins when all have replied."],
            ],
            "required": ["name", "threads"],
        ]
        return [
            ToolDefinition(
                name: startToolName,
                description: "Start a workflow run: background work that follows your plan, phase after phase, each phase's threads working at once "
                    + "in this session's environment. The result comes at once; when the run ends you receive its threads' replies.",
                inputSchema: [
                    "type": "object",
                    "properties": [
                        "name": ["type": "string"], "description": ["type": "string"],
                        "phases": ["type": "array", "items": phase],
                        "timeout_s": ["type": "number", "description": "Seconds the run may take (default 1800, at most 3600)."],
                    ],
                    "required": ["phases"],
                ]),
            ToolDefinition(
                name: stopToolName, description: "Stop a workflow run of this session: its working threads are interrupted. "
                    + "Name it by workflow_run_id, or by name for the latest run of that name.",
                inputSchema: ["type": "object", "properties": ["workflow_run_id": ["type": "string"], "name": ["type": "string"]]]),
        ]
    }

    /// A plan the server refuses (`program_error`), with why.
    struct Refusal: Error, Equatable {
        var message: String
    }

    /// The plan a `start_workflow_run` call asks for, checked against the roster.
    static func parse(_ input: JSONValue, runID: String, roster: [(name: String, id: String, version: Int)], inline: Bool,
                      ordinal: Int) throws(Refusal) -> WorkflowPlan {
        guard case .array(let phases)? = input["phases"], (1...maxPhases).contains(phases.count) else {
            throw Refusal(message: "phases: 1 to \(maxPhases) phases are required")
        }
        var planned: [Phase] = []
        for (index, phase) in phases.enumerated() {
            let path = "phases[\(index)]"
            guard let name = phase["name"]?.stringValue, !name.isEmpty else { throw Refusal(message: "\(path).name is required") }
            guard case .array(let threads)? = phase["threads"], (1...maxThreadsPerPhase).contains(threads.count) else {
                throw Refusal(message: "\(path).threads: 1 to \(maxThreadsPerPhase) threads are required")
            }
            var orders: [Order] = []
            for (number, thread) in threads.enumerated() {
                let at = "\(path).threads[\(number)]"
                guard let message = thread["message"]?.stringValue, !message.isEmpty else { throw Refusal(message: "\(at).message is required") }
                if let defined = thread["inline"], defined != .null {
                    guard inline else { throw Refusal(message: "\(at).inline: inline agents are disabled for this agent's workflows") }
                    guard let agent = defined["name"]?.stringValue, !agent.isEmpty, let system = defined["system"]?.stringValue else {
                        throw Refusal(message: "\(at).inline: {name, system} is required")
                    }
                    orders.append(Order(agent: agent, agentID: "", agentVersion: 0, inlineSystem: system, message: message))
                } else {
                    let named = thread["agent"]?.stringValue ?? ""
                    guard let agent = roster.first(where: { $0.name == named }) else {
                        let choices = roster.map(\.name).joined(separator: ", ")
                        throw Refusal(message: "\(at).agent: one of the workflow agents (\(choices.isEmpty ? "none" : choices))\(inline ? ", or inline" : "") is required")
                    }
                    orders.append(Order(agent: agent.name, agentID: agent.id, agentVersion: agent.version, inlineSystem: nil, message: message))
                }
            }
            planned.append(Phase(id: "\(runID)_phase\(index)", name: name, description: phase["description"]?.stringValue, threads: orders))
        }
        var timeout = defaultTimeout
        if let asked = input["timeout_s"], asked != .null {
            guard let seconds = asked.doubleValue, seconds > 0, seconds <= maxTimeout else {
                throw Refusal(message: "timeout_s: more than 0 and at most \(Int(maxTimeout)) seconds")
            }
            timeout = seconds
        }
        let name = input["name"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "workflow run \(ordinal)"
        return WorkflowPlan(runID: runID, name: name, description: input["description"]?.stringValue, phases: planned, timeout: timeout)
    }

    /// The run's id: the session's and the call's, hashed, so a resumed call names the same run.
    static func runID(session: SessionID, callID: String) -> String {
        "wfr_" + String(SHA256.hex(Array("\(session.rawValue)/workflow/\(callID)".utf8)).prefix(24))
    }

    /// The id of the thread running order `index` of `phase`: derived from the run's (itself
    /// the session's and the call's), so starting it is idempotent.
    func threadID(phase: Int, index: Int) -> String {
        SessionThreads.threadID(session: SessionID(runID), callID: "\(phase)/\(index)")
    }

    /// `workflow_run.created`, the plan kept whole for the harness that runs it (`drover_plan`).
    var createdPayload: JSONValue {
        let declared: [JSONValue] = phases.map { phase in
            ["id": .string(phase.id), "name": .string(phase.name), "description": phase.description.map(JSONValue.string) ?? .null]
        }
        let plan: [JSONValue] = phases.map { phase in
            .array(phase.threads.map { order in
                var json: [String: JSONValue] = ["agent": .string(order.agent), "message": .string(order.message)]
                if let system = order.inlineSystem {
                    json["inline_system"] = .string(system)
                } else {
                    json["agent_id"] = .string(order.agentID)
                    json["agent_version"] = .number(Double(order.agentVersion))
                }
                return .object(json)
            })
        }
        return [
            "workflow_run_id": .string(runID), "name": .string(name), "description": description.map(JSONValue.string) ?? .null,
            "phases": .array(declared), "drover_plan": ["phases": .array(plan), "timeout_s": .number(timeout)],
        ]
    }

}

extension WorkflowPlan {
    /// The plan a `workflow_run.created` payload logged.
    init?(created payload: JSONValue) {
        guard let runID = payload["workflow_run_id"]?.stringValue, case .array(let declared)? = payload["phases"],
              case .array(let plan)? = payload["drover_plan"]?["phases"], plan.count == declared.count else { return nil }
        self.runID = runID
        name = payload["name"]?.stringValue ?? ""
        description = payload["description"]?.stringValue
        timeout = payload["drover_plan"]?["timeout_s"]?.doubleValue ?? Self.defaultTimeout
        phases = zip(declared, plan).map { phase, threads in
            let list: [JSONValue] = if case .array(let list) = threads { list } else { [] }
            let orders: [Order] = list.map { order in
                Order(agent: order["agent"]?.stringValue ?? "", agentID: order["agent_id"]?.stringValue ?? "",
                      agentVersion: order["agent_version"]?.intValue ?? 0, inlineSystem: order["inline_system"]?.stringValue,
                      message: order["message"]?.stringValue ?? "")
            }
            return Phase(id: phase["id"]?.stringValue ?? "", name: phase["name"]?.stringValue ?? "", description: phase["description"]?.stringValue,
                         threads: orders)
        }
    }

    /// An order's task as its thread receives it: `{{previous}}` replaced by `previous` (the
    /// previous phase's replies).
    static func task(_ order: Order, previous: String) -> String {
        order.message.replacingOccurrences(of: previousMarker, with: previous.isEmpty ? "(no previous phase)" : previous)
    }
}
