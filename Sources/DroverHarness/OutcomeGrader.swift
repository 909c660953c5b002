import DroverCore
import DroverModel

/// The words of an outcome's loop: the assignment the agent reads, the grader's request (a
/// model request of its own: the task, the rubric and the deliverable, never the working
/// transcript), how its answer becomes a verdict, and the feedback the agent reads after one.
/// Pure; the runner makes the call and logs the span events.
enum OutcomeGrader {
    /// The one tool the grader is offered: it answers by calling it.
    static let tool = ToolDefinition(
        name: "record_verdict",
        description: "Record whether the deliverable meets the rubric.",
        inputSchema: [
            "type": "object",
            "properties": [
                "result": ["type": "string", "enum": ["satisfied", "needs_revision", "failed"],
                           "description": "satisfied: every criterion is met. needs_revision: some are not, and a revision could meet them. failed: the rubric does not apply to this deliverable."],
                "explanation": ["type": "string", "description": "Which criteria are met or not, and why."],
            ],
            "required": ["result", "explanation"],
        ])

    static let system = """
        You evaluate a deliverable against a rubric. You see the task, the rubric and the deliverable, \
        nothing else. Call record_verdict exactly once.
        """

    /// The grader's request. The rubric and `Iteration: N` (0-based) close it, together, so that
    /// a scripted model can tell one rubric's evaluations from the next.
    static func request(_ evaluation: OutcomeEvaluation, model: String, maxTokens: Int, session: String) -> ModelRequest {
        let text = """
            Task:
            \(evaluation.description)

            Deliverable:
            \(evaluation.deliverable.isEmpty ? "(the agent wrote nothing)" : evaluation.deliverable)

            Evaluation \(evaluation.iteration + 1) of at most \(evaluation.maxIterations).

            Rubric:
            \(evaluation.rubric)
            Iteration: \(evaluation.iteration)
            """
        return ModelRequest(model: model, system: system, messages: [Message(role: .user, content: [.text(text)])], tools: [tool],
                            maxTokens: maxTokens, userID: session)
    }

    /// The verdict in the grader's answer (its `record_verdict` call): `needs_revision` at the last
    /// iteration is `max_iterations_reached`; an answer without a verdict is `failed`, saying so.
    static func verdict(_ response: ModelResponse, iteration: Int, maxIterations: Int) -> (result: String, explanation: String) {
        for block in response.content {
            guard case .toolUse(_, let name, let input) = block, name == tool.name else { continue }
            let explanation = input["explanation"]?.stringValue ?? ""
            switch input["result"]?.stringValue {
            case "satisfied": return ("satisfied", explanation)
            case "needs_revision": return (iteration + 1 >= maxIterations ? "max_iterations_reached" : "needs_revision", explanation)
            case "failed": return ("failed", explanation)
            default: break
            }
        }
        return ("failed", "The grader gave no verdict.")
    }

    /// What the agent reads of a `user.define_outcome`.
    static func assignment(_ payload: JSONValue) -> String {
        let description = payload["description"]?.stringValue ?? ""
        let cycles = payload["max_iterations"]?.intValue ?? OutcomeProgress.defaultMaxIterations
        return "\(description)\n\n(When you finish, your work is evaluated against a rubric; you may be asked to revise it, at most \(cycles) evaluations in all.)"
    }

    /// What the agent reads of a verdict it must answer, or nil (the others end the outcome).
    static func feedback(_ payload: JSONValue) -> String? {
        let explanation = payload["explanation"]?.stringValue ?? ""
        switch payload["result"]?.stringValue {
        case "needs_revision":
            return "An evaluation of your work found it needs revision:\n\(explanation)\n\nRevise it."
        case "max_iterations_reached":
            return "The last evaluation found your work still needs revision:\n\(explanation)\n\nNo further evaluation follows. Acknowledge this briefly."
        default:
            return nil
        }
    }
}
