import DroverCore
import DroverModel
import Foundation
import Testing
@testable import DroverHarness

/// An outcome's loop as the planner reads it from the log: every point a harness can stop at,
/// with the step the next one takes.
@Suite struct OutcomePlannerTests {
    typealias LogBuilder = TurnPlannerTests.LogBuilder
    static let planner = TurnPlannerTests.planner

    static func define(_ b: inout LogBuilder, max: Int = 3) {
        b.add(.userDefineOutcome, ["description": "Write the report", "rubric": ["type": "text", "content": "It says DONE."],
                                   "max_iterations": .number(Double(max)), "outcome_id": "outc_1"])
    }

    static func verdict(_ b: inout LogBuilder, _ result: String, iteration: Int) {
        b.add(.spanOutcomeEvaluationStart, ["outcome_id": "outc_1", "iteration": .number(Double(iteration))])
        b.add(.spanOutcomeEvaluationEnd, ["outcome_id": "outc_1", "iteration": .number(Double(iteration)), "result": .string(result),
                                          "explanation": "It does not say DONE.", "usage": ["input_tokens": 7, "output_tokens": 3]])
    }

    @Test func theAssignmentIsTheAgentsAndItsAttemptIsGraded() throws {
        var b = LogBuilder()
        Self.define(&b)
        guard case .callModel(let view, _) = Self.planner.next(b.log) else { Issue.record("no model call"); return }
        guard case .text(let text)? = view.messages.first?.content.first else { Issue.record("no assignment"); return }
        #expect(text.hasPrefix("Write the report") && !text.contains("DONE"), "the rubric is the grader's: \(text)")
        b.request(); b.answered(); b.say("Draft one.")
        #expect(Self.planner.next(b.log) == .evaluateOutcome(OutcomeEvaluation(
            outcomeID: "outc_1", iteration: 0, maxIterations: 3, description: "Write the report", rubric: "It says DONE.",
            deliverable: "Draft one.", startID: nil)))
        // The grader's request: task, deliverable, rubric and iteration; never the transcript.
        let request = OutcomeGrader.request(try #require(b.log.outcome?.nextEvaluation), model: "m", maxTokens: 100, session: "s")
        guard case .text(let asked)? = request.messages.first?.content.first else { Issue.record("no grader message"); return }
        #expect(request.messages.count == 1 && asked.contains("Draft one.") && asked.hasSuffix("It says DONE.\nIteration: 0"))
    }

    /// A harness that died between the start and the end grades the same iteration again, under
    /// the start it logged.
    @Test func anEvaluationLeftOpenIsGradedAgain() {
        var b = LogBuilder()
        Self.define(&b); b.request(); b.answered(); b.say("Draft one.")
        b.add(.spanOutcomeEvaluationStart, ["outcome_id": "outc_1", "iteration": 0])
        guard case .evaluateOutcome(let evaluation) = Self.planner.next(b.log) else { Issue.record("not graded again"); return }
        #expect(evaluation.iteration == 0 && evaluation.startID == Event.apiID(uuid: "e5") && evaluation.deliverable == "Draft one.")
    }

    /// needs_revision: the agent reads the explanation and revises; its revision alone is graded next.
    @Test func aRevisionIsAskedForThenGradedAsTheNextIteration() {
        var b = LogBuilder()
        Self.define(&b); b.request(); b.answered(); b.say("Draft one.")
        Self.verdict(&b, "needs_revision", iteration: 0)
        guard case .callModel(let view, _) = Self.planner.next(b.log) else { Issue.record("no revision turn"); return }
        guard case .text(let feedback)? = view.messages.last?.content.last else { Issue.record("no feedback"); return }
        #expect(view.messages.map(\.role) == [.user, .assistant, .user] && feedback.contains("It does not say DONE.") && feedback.contains("Revise"))
        TurnPlannerTests.expectValid(view, "revision")
        b.request(); b.answered(); b.say("Draft two: DONE.")
        guard case .evaluateOutcome(let next) = Self.planner.next(b.log) else { Issue.record("not graded"); return }
        #expect(next.iteration == 1 && next.deliverable == "Draft two: DONE." && next.startID == nil)
        // The grader's tokens count against the session's token budget, which holds for graders too.
        #expect(b.log.tokensSpent == 2 * 10 + 7 + 3)
        var capped = Self.planner
        capped.tokenBudget = 30
        #expect(capped.next(b.log) == .finish(.budgetReached, unanswered: [], handledThrough: b.log.lastSeq))
    }

    /// Terminal verdicts: satisfied and failed end the turn; max_iterations_reached gets one
    /// acknowledgement turn, then the turn ends without another evaluation.
    @Test func terminalVerdictsEndTheTurn() {
        for result in ["satisfied", "failed"] {
            var b = LogBuilder()
            Self.define(&b); b.request(); b.answered(); b.say("Draft.")
            Self.verdict(&b, result, iteration: 0)
            #expect(Self.planner.next(b.log) == .finish(.endTurn, unanswered: [], handledThrough: b.log.lastSeq), "\(result)")
        }
        var b = LogBuilder()
        Self.define(&b, max: 1); b.request(); b.answered(); b.say("Draft.")
        Self.verdict(&b, "max_iterations_reached", iteration: 0)
        guard case .callModel(let view, _) = Self.planner.next(b.log) else { Issue.record("no acknowledgement turn"); return }
        guard case .text(let feedback)? = view.messages.last?.content.last else { Issue.record("no feedback"); return }
        #expect(feedback.contains("No further evaluation"))
        b.request(); b.answered(); b.say("Understood.")
        #expect(Self.planner.next(b.log) == .finish(.endTurn, unanswered: [], handledThrough: b.log.lastSeq))
    }

    @Test func theLastIterationsRevisionIsMaxIterationsReached() {
        let asked = ModelResponse(id: "m", content: [.toolUse(id: "t", name: "record_verdict", input: ["result": "needs_revision", "explanation": "no"])],
                                  stopReason: "tool_use", usage: ModelUsage())
        #expect(OutcomeGrader.verdict(asked, iteration: 0, maxIterations: 3).result == "needs_revision")
        #expect(OutcomeGrader.verdict(asked, iteration: 2, maxIterations: 3).result == "max_iterations_reached")
        let silent = ModelResponse(id: "m", content: [.text("looks fine")], stopReason: "end_turn", usage: ModelUsage())
        #expect(OutcomeGrader.verdict(silent, iteration: 0, maxIterations: 3).result == "failed")
    }

    /// An interrupt while the grader works ends the turn (the runner logs the evaluation
    /// `interrupted`); a new outcome after it starts over.
    @Test func anInterruptDuringGradingEndsTheTurn() {
        var b = LogBuilder()
        Self.define(&b); b.request(); b.answered(); b.say("Draft.")
        b.add(.spanOutcomeEvaluationStart, ["outcome_id": "outc_1", "iteration": 0])
        b.add(.userInterrupt)
        #expect(Self.planner.next(b.log) == .finish(.interrupted, unanswered: [], handledThrough: b.log.lastSeq))
        #expect(b.log.outcome?.open?.iteration == 0)
    }
}
