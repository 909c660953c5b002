import DroverCore

/// Where a session's outcome stands, folded from its log as events are appended
/// (`SessionLog.outcome`): the last `user.define_outcome`, what the agent has written toward it
/// since its attempt began (the deliverable a grader sees, never the working transcript), the
/// evaluation under way, and the last verdict. A harness that dies mid-evaluation leaves a start
/// without an end, which its successor finds here and grades again.
public struct OutcomeProgress: Sendable, Equatable {
    public var outcomeID: String
    public var description: String
    public var rubric: String
    public var maxIterations: Int
    /// The agent's messages since the attempt began (the definition, or the last verdict that
    /// asked for a revision), the latest `maxDeliverableBytes` of them.
    public var deliverable: [String] = []
    /// The deliverable's UTF-8 bytes.
    var deliverableBytes = 0
    /// An evaluation started and not ended: its iteration and its start event's id.
    public var open: Open?
    /// The last verdict.
    public var verdict: Verdict?

    public struct Open: Sendable, Equatable {
        public var iteration: Int
        public var startID: String
    }

    public struct Verdict: Sendable, Equatable {
        public var result: String
        public var iteration: Int
        public var seq: Int64
    }

    /// Verdicts after which no evaluation follows.
    public static let terminal: Set<String> = ["satisfied", "max_iterations_reached", "failed", "interrupted"]
    /// Verdicts the agent answers with a turn of its own (a revision, or the final acknowledgement).
    public static let answered: Set<String> = ["needs_revision", "max_iterations_reached"]
    static let maxDeliverableBytes = 100_000
    public static let defaultMaxIterations = 3
    public static let maxMaxIterations = 20

    public var isTerminal: Bool { verdict.map { Self.terminal.contains($0.result) } ?? false }

    /// The seq of the last verdict the agent must answer (0: none): the planner reads it as input.
    public var feedbackSeq: Int64 {
        guard let verdict, Self.answered.contains(verdict.result) else { return 0 }
        return verdict.seq
    }

    /// The evaluation to run now that the agent's attempt ended, or nil when the outcome is
    /// settled: the open one again, or the next iteration.
    public var nextEvaluation: OutcomeEvaluation? {
        guard !isTerminal else { return nil }
        let iteration = open?.iteration ?? verdict.map { $0.iteration + 1 } ?? 0
        return OutcomeEvaluation(
            outcomeID: outcomeID, iteration: iteration, maxIterations: maxIterations, description: description, rubric: rubric,
            deliverable: deliverable.joined(separator: "\n\n"), startID: open?.startID)
    }

    /// Folds one entry; a new definition replaces the outcome.
    static func apply(_ entry: SessionLog.Entry, to progress: inout OutcomeProgress?) {
        let json = entry.json
        switch entry.type {
        case .userDefineOutcome:
            progress = OutcomeProgress(
                outcomeID: json["outcome_id"]?.stringValue ?? "", description: json["description"]?.stringValue ?? "",
                rubric: json["rubric"]?["content"]?.stringValue ?? "",
                maxIterations: json["max_iterations"]?.intValue ?? defaultMaxIterations)
        case .agentMessage:
            guard var current = progress, !current.isTerminal, current.open == nil else { return }
            let text = ContextView.Builder.text(json["content"])
            guard !text.isEmpty else { return }
            current.deliverable.append(text)
            current.deliverableBytes += text.utf8.count
            while current.deliverableBytes > maxDeliverableBytes, current.deliverable.count > 1 {
                current.deliverableBytes -= current.deliverable.removeFirst().utf8.count
            }
            progress = current
        case .spanOutcomeEvaluationStart:
            guard var current = progress, json["outcome_id"]?.stringValue == current.outcomeID else { return }
            current.open = Open(iteration: json["iteration"]?.intValue ?? 0, startID: entry.event.apiID)
            progress = current
        case .spanOutcomeEvaluationEnd:
            guard var current = progress, json["outcome_id"]?.stringValue == current.outcomeID else { return }
            let result = json["result"]?.stringValue ?? "failed"
            current.open = nil
            current.verdict = Verdict(result: result, iteration: json["iteration"]?.intValue ?? 0, seq: entry.seq)
            if result == "needs_revision" {
                current.deliverable = []
                current.deliverableBytes = 0
            }
            progress = current
        default:
            return
        }
    }
}

/// One evaluation to run: the outcome, its iteration, what the grader sees, and the start event
/// already logged when a harness that died left it open.
public struct OutcomeEvaluation: Sendable, Equatable {
    public var outcomeID: String
    public var iteration: Int
    public var maxIterations: Int
    public var description: String
    public var rubric: String
    public var deliverable: String
    public var startID: String?
}
