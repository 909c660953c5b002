import DroverCore
import DroverStore
import DroverModel
import DroverScriptedModel
import Foundation
import Testing
@testable import DroverHarness

/// The agent loop's decisions as tables of logs: every ordering the log can have, and every
/// point a harness can die at, with the step the planner must take.
@Suite struct TurnPlannerTests {
    /// Builds a log: events get seqs in order; agent-side events carry `epoch`.
    struct LogBuilder {
        var events: [Event] = []
        var epoch: Int64 = 1
        mutating func add(_ type: EventType, _ payload: JSONValue = [:]) {
            let seq = Int64(events.count + 1)
            events.append(Event(sessionID: SessionID("s"), seq: seq, id: "e\(seq)", type: type, payload: payload.text, createdAt: Date(),
                                leaseEpoch: type.isUserSide ? nil : epoch))
        }
        mutating func user(_ text: String) { add(.userMessage, ["content": [["type": "text", "text": .string(text)]]]) }
        mutating func request(_ turn: Int = 1) { add(.spanModelRequestStart, ["turn": .number(Double(turn))]) }
        mutating func answered(tokens: Int = 10) {
            add(.spanModelRequestEnd, ["usage": ["input_tokens": .number(Double(tokens)), "output_tokens": 0]])
        }
        mutating func say(_ text: String) { add(.agentMessage, ["content": [["type": "text", "text": .string(text)]]]) }
        mutating func use(_ id: String) { add(.agentToolUse, ["id": .string(id), "name": "bash", "input": ["command": "true"]]) }
        mutating func result(_ id: String) { add(.agentToolResult, ["tool_use_id": .string(id), "content": "ok", "is_error": false]) }
        var log: SessionLog { SessionLog(events: events) }
    }

    static let planner = TurnPlanner(epoch: 1, maxTurns: 5, tokenBudget: nil, contextBudgetTokens: 1_000_000)

    /// The view goes out as the Messages API body and passes every rule the real API applies.
    static func expectValid(_ view: ContextView, _ why: String) {
        let request = ModelRequest(model: "m", system: "s", messages: view.messages, tools: [], userID: "s")
        var body = AnthropicProvider.body(request)
        if case .object(var members) = body { members["stream"] = nil; body = .object(members) }
        let refusal = MessagesRequestRules.check(headers: ["x-api-key": "k", "anthropic-version": "2023-06-01"], body: Array(body.text.utf8))
        #expect(refusal == nil, "\(why): \(refusal?.message ?? "")")
    }

    static func roles(_ step: TurnStep) -> [Message.Role]? {
        if case .callModel(let view, _) = step { return view.messages.map(\.role) }
        return nil
    }

    @Test func aNewMessageCallsTheModel() {
        var b = LogBuilder()
        b.user("hello")
        #expect(Self.roles(Self.planner.next(b.log)) == [.user])
    }

    @Test func aMessageSentWhileAToolRunsFollowsTheToolResults() {
        var b = LogBuilder()
        b.user("go"); b.add(.sessionStatusRunning); b.request(); b.answered(); b.use("t1"); b.user("also this"); b.result("t1")
        guard case .callModel(let view, _) = Self.planner.next(b.log) else { Issue.record("no model call"); return }
        #expect(view.messages.map(\.role) == [.user, .assistant, .user])
        #expect(view.messages[2].content == [.toolResult(toolUseID: "t1", content: "ok", isError: false), .text("also this")])
        Self.expectValid(view, "interleaved")
    }

    @Test func aMessageSentDuringAModelCallFollowsItsAnswer() {
        var b = LogBuilder()
        b.user("go"); b.request(); b.user("and one more"); b.answered(); b.say("done")
        guard case .callModel(let view, _) = Self.planner.next(b.log) else { Issue.record("the message must be answered"); return }
        #expect(view.messages.map(\.role) == [.user, .assistant, .user])
        #expect(view.messages[2].content == [.text("and one more")])
        Self.expectValid(view, "during a call")
    }

    @Test func parallelCallsRunOnlyWhatIsUnanswered() {
        var b = LogBuilder()
        b.user("go"); b.request(); b.answered(); b.use("a"); b.use("b"); b.result("b")
        #expect(Self.planner.next(b.log) == .runTools([PendingToolUse(id: "a", name: "bash", input: ["command": "true"], recovering: false, eventID: "sevt_e4")]))
        // Logged under an earlier lease: a successor re-sends it as a recovering call.
        var earlier = TurnPlanner(epoch: 2, maxTurns: 5, tokenBudget: nil, contextBudgetTokens: 1_000_000)
        guard case .runTools(let calls) = earlier.next(b.log) else { Issue.record("no tools"); return }
        #expect(calls.map(\.recovering) == [true])
        earlier.maxTurns = 1
        #expect(earlier.next(b.log) == .runTools(calls), "pending tools run before any limit is applied")
    }

    @Test func aTurnTheLogAlreadyEndedIsFinishedWithoutCallingTheModel() {
        var b = LogBuilder()
        b.user("go"); b.request(); b.answered(); b.say("the final answer")
        // The harness died after writing the answer, before its release: the successor closes it.
        #expect(Self.planner.next(b.log) == .finish(.endTurn, unanswered: [], handledThrough: 4))
        // A user message after the request is new input: answered, not closed.
        b.user("one more thing")
        #expect(Self.roles(Self.planner.next(b.log)) == [.user, .assistant, .user])
        // A session claimed again after its idle was written (nothing new): closed again.
        var closed = LogBuilder()
        closed.user("go"); closed.request(); closed.answered(); closed.use("t"); closed.add(.userInterrupt)
        closed.add(.agentToolResult, ["tool_use_id": "t", "content": "Interrupted", "is_error": true])
        closed.add(.sessionStatusIdle, ["stop_reason": ["type": "interrupted"]])
        guard case .finish(.endTurn, [], 7) = Self.planner.next(closed.log) else { Issue.record("\(Self.planner.next(closed.log))"); return }
    }

    @Test func interruptsEndTheTurnAndAnswerPendingCalls() {
        var b = LogBuilder()
        b.user("go"); b.request(); b.answered(); b.use("t1"); b.add(.userInterrupt)
        let pending = [PendingToolUse(id: "t1", name: "bash", input: ["command": "true"], recovering: false, eventID: "sevt_e4")]
        #expect(Self.planner.next(b.log) == .finish(.interrupted, unanswered: pending, handledThrough: 5))
        // A message after the interrupt supersedes it.
        b.result("t1"); b.user("actually, do this")
        #expect(Self.roles(Self.planner.next(b.log)) == [.user, .assistant, .user])
    }

    @Test func aSpendLimitEndsTheTurnAtItsCostAndWithoutAPrice() {
        var b = LogBuilder()
        b.user("go")
        // 2 × 600 input tokens at $10 per million: 1.2 cents, rounded up to 2.
        for turn in 1...2 { b.request(turn); b.answered(tokens: 600); b.use("t\(turn)"); b.result("t\(turn)") }
        var limited = Self.planner
        let price = SessionStore.ModelPrice(input: 10, output: 50, cacheRead: 1)
        limited.spendLimit = SpendLimit(maxCents: 3, price: price)
        #expect(Self.roles(limited.next(b.log)) != nil)
        limited.spendLimit = SpendLimit(maxCents: 2, price: price)
        #expect(limited.next(b.log) == .finish(.budgetReached, unanswered: [], handledThrough: b.log.lastSeq))
        // A model without a price cannot be measured: the budget counts as reached.
        limited.spendLimit = SpendLimit(maxCents: 1_000_000, price: nil)
        #expect(limited.next(b.log) == .finish(.budgetReached, unanswered: [], handledThrough: b.log.lastSeq))
    }

    @Test func limitsEndTheTurn() {
        var b = LogBuilder()
        b.user("go")
        for turn in 1...2 { b.request(turn); b.answered(tokens: 600); b.use("t\(turn)"); b.result("t\(turn)") }
        var limited = Self.planner
        limited.maxTurns = 2
        #expect(limited.next(b.log) == .finish(.maxTurns, unanswered: [], handledThrough: b.log.lastSeq))
        limited.maxTurns = 5
        limited.tokenBudget = 1000
        #expect(limited.next(b.log) == .finish(.budgetReached, unanswered: [], handledThrough: b.log.lastSeq))
        // Turns count since the session last went idle.
        b.add(.sessionStatusIdle, ["stop_reason": ["type": "max_turns"]]); b.user("continue")
        limited.tokenBudget = nil
        limited.maxTurns = 2
        #expect(Self.roles(limited.next(b.log)) != nil)
    }

    @Test func aSessionThatKeepsKillingItsHarnessesIsClosed() {
        var b = LogBuilder()
        b.user("go"); b.request(); b.answered(); b.use("t1")
        var planner = Self.planner
        planner.attempt = 6
        planner.maxAttempts = 5
        guard case .finish(.retriesExhausted, let unanswered, _) = planner.next(b.log) else { Issue.record("not closed"); return }
        #expect(unanswered.map(\.id) == ["t1"])
        planner.attempt = 5
        #expect(planner.next(b.log) == .runTools([PendingToolUse(id: "t1", name: "bash", input: ["command": "true"], recovering: false, eventID: "sevt_e4")]))
    }

    @Test func compactionIsLoggedOnlyWhenTheViewElidesSomethingNew() {
        var b = LogBuilder()
        b.user("go"); b.request(); b.answered(); b.use("t1")
        b.add(.agentToolResult, ["tool_use_id": "t1", "content": .string(String(repeating: "x", count: 8000)), "is_error": false])
        let tight = TurnPlanner(epoch: 1, maxTurns: 5, tokenBudget: nil, contextBudgetTokens: 500)
        guard case .callModel(_, let compacted) = tight.next(b.log) else { Issue.record("no call"); return }
        #expect(compacted == ["t1"])
        b.add(.agentContextCompacted, ["elided_tool_results": ["t1"]])
        guard case .callModel(_, let again) = tight.next(b.log) else { Issue.record("no call"); return }
        #expect(again == nil)
    }

    /// Every prefix of a log with interleavings (a crash after any event), and every position of a
    /// stray user message: whatever the planner decides to send is a request the real API accepts,
    /// and the planner never re-asks a turn the log already answered.
    @Test func atEveryCrashPointAndOrderingTheViewIsValid() {
        var b = LogBuilder()
        b.user("go"); b.add(.sessionStatusRunning); b.request(1); b.answered(); b.add(.agentThinking, ["thinking": "hm", "signature": "sig"])
        b.say("two tools"); b.use("a"); b.use("b"); b.result("b"); b.result("a")
        b.request(2); b.answered(); b.say("done"); b.add(.sessionStatusIdle, ["stop_reason": ["type": "end_turn"]])
        b.user("next"); b.request(3); b.answered(); b.use("c"); b.add(.userInterrupt)
        b.add(.agentToolResult, ["tool_use_id": "c", "content": "Interrupted", "is_error": true])
        b.add(.sessionStatusIdle, ["stop_reason": ["type": "interrupted"]]); b.user("after the interrupt")
        let full = b.events
        var checked = 0
        for cut in 1...full.count {
            for strayAt in 0...cut {
                var events = Array(full.prefix(cut))
                if strayAt < cut {
                    events.insert(Event(sessionID: SessionID("s"), seq: 0, id: "x", type: .userMessage,
                                        payload: #"{"content":[{"type":"text","text":"stray"}]}"#, createdAt: Date(), leaseEpoch: nil), at: strayAt)
                }
                for (index, _) in events.enumerated() { events[index].seq = Int64(index + 1) }
                let step = Self.planner.next(SessionLog(events: events))
                if case .callModel(let view, _) = step {
                    Self.expectValid(view, "cut \(cut), stray at \(strayAt)")
                    checked += 1
                }
            }
        }
        #expect(checked > 50)
    }
}

/// Custom tools and confirmations: tool uses that wait for the client, as tables of logs.
@Suite struct RequiresActionTests {
    typealias LogBuilder = TurnPlannerTests.LogBuilder
    static let planner = TurnPlannerTests.planner

    @Test func aCustomToolUseIdlesAsRequiresActionAndItsResultResumes() {
        var b = LogBuilder()
        b.user("look it up"); b.request(); b.answered()
        b.add(.agentCustomToolUse, ["id": "toolu_c", "name": "lookup", "input": ["q": "x"]])
        // Waiting for the client: no tool runs; the turn idles naming the tool use's event.
        #expect(Self.planner.next(b.log) == .finish(.requiresAction(["sevt_e4"]), unanswered: [], handledThrough: 4))
        b.add(.sessionStatusIdle, ["stop_reason": IdleReason.requiresAction(["sevt_e4"]).stopReason])
        b.add(.userCustomToolResult, ["custom_tool_use_id": "sevt_e4", "content": [["type": "text", "text": "found"]], "is_error": false])
        guard case .callModel(let view, _) = Self.planner.next(b.log) else { Issue.record("the result did not resume the turn"); return }
        #expect(view.messages.last?.content == [.toolResult(toolUseID: "toolu_c", content: "found", isError: false)])
        TurnPlannerTests.expectValid(view, "custom tool result")
    }

    @Test func aCustomToolResultThatArrivesBeforeTheIdleIsNotLost() {
        var b = LogBuilder()
        b.user("look it up"); b.request(); b.answered()
        b.add(.agentCustomToolUse, ["id": "toolu_c", "name": "lookup", "input": [:]])
        b.add(.userCustomToolResult, ["custom_tool_use_id": "sevt_e4", "content": "early", "is_error": false])
        guard case .callModel = Self.planner.next(b.log) else { Issue.record("\(Self.planner.next(b.log))"); return }
    }

    @Test func alwaysAskWaitsForConfirmationThenRunsOrLogsTheDenial() {
        var b = LogBuilder()
        b.user("delete it"); b.request(); b.answered()
        b.add(.agentToolUse, ["id": "toolu_a", "name": "bash", "input": ["command": "rm x"], "evaluated_permission": "ask"])
        b.add(.agentToolUse, ["id": "toolu_b", "name": "read", "input": ["path": "y"]])
        // The unasked one runs first; then the turn waits for the confirmation.
        guard case .runTools(let first) = Self.planner.next(b.log) else { Issue.record("no run"); return }
        #expect(first.map(\.id) == ["toolu_b"])
        b.result("toolu_b")
        #expect(Self.planner.next(b.log) == .finish(.requiresAction(["sevt_e4"]), unanswered: [], handledThrough: 6))
        var allowed = b
        allowed.add(.userToolConfirmation, ["tool_use_id": "sevt_e4", "result": "allow"])
        guard case .runTools(let run) = Self.planner.next(allowed.log), run.first?.status == .run else { Issue.record("allow did not run it"); return }
        var denied = b
        denied.add(.userToolConfirmation, ["tool_use_id": "sevt_e4", "result": "deny", "deny_message": "not that file"])
        guard case .runTools(let deny) = Self.planner.next(denied.log), deny.first?.status == .denied("not that file") else {
            Issue.record("deny was not planned as a denial")
            return
        }
    }

    static let selfHosted = TurnPlanner(
        epoch: 1, maxTurns: 5, tokenBudget: nil, contextBudgetTokens: 1_000_000,
        worker: WorkerRouting(tools: BuiltinTools.names, deadline: 60))

    @Test func aSelfHostedCallWaitsForItsWorkerWithTheSessionRunning() {
        var b = LogBuilder()
        b.user("run it"); b.request(); b.answered(); b.use("toolu_w")
        let logged = b.events.last!.createdAt
        // Not run here, not an idle: the runner waits for the worker until the call's deadline.
        guard case .awaitWorker(let calls, let until) = Self.selfHosted.next(b.log, now: logged) else {
            Issue.record("\(Self.selfHosted.next(b.log, now: logged))")
            return
        }
        #expect(calls.map(\.id) == ["toolu_w"] && calls[0].status == .awaitingWorker)
        #expect(until == logged.addingTimeInterval(60))
        // The worker's result names the call's event; it resumes the turn like any result.
        var answered = b
        answered.add(.userToolResult, ["tool_use_id": "sevt_e4", "drover_tool_use_id": "toolu_w", "is_error": false,
                                       "content": [["type": "text", "text": "done on the laptop"]]])
        guard case .callModel(let view, _) = Self.selfHosted.next(answered.log, now: logged) else { Issue.record("the result did not resume"); return }
        #expect(view.messages.last?.content == [.toolResult(toolUseID: "toolu_w", content: "done on the laptop", isError: false)])
        TurnPlannerTests.expectValid(view, "worker result")
        // A result that names only the event (an older row) answers it too.
        var byEvent = b
        byEvent.add(.userToolResult, ["tool_use_id": "sevt_e4", "content": [["type": "text", "text": "x"]]])
        guard case .callModel = Self.selfHosted.next(byEvent.log, now: logged) else { Issue.record("an event-id result was not read"); return }
        // Past the deadline with no result: the call is planned as an error result.
        guard case .runTools(let late) = Self.selfHosted.next(b.log, now: logged.addingTimeInterval(61)) else { Issue.record("no deadline"); return }
        #expect(late.map(\.status) == [.workerDeadlinePassed])
        // A pool-backed planner runs the same call in the sandbox.
        guard case .runTools(let pooled) = Self.planner.next(b.log), pooled.first?.status == .run else { Issue.record("not run"); return }
    }

    @Test func aSelfHostedSessionStillRunsItsOtherToolsAndWaitsForConfirmationFirst() {
        var b = LogBuilder()
        b.user("go"); b.request(); b.answered()
        b.add(.agentToolUse, ["id": "toolu_f", "name": "web_fetch", "input": ["url": "https://example.com"]])
        b.add(.agentToolUse, ["id": "toolu_a", "name": "bash", "input": ["command": "rm x"], "evaluated_permission": "ask"])
        let now = b.events.last!.createdAt
        // web_fetch is the harness's; the asked bash waits for the user before the worker gets it.
        guard case .runTools(let first) = Self.selfHosted.next(b.log, now: now) else { Issue.record("no run"); return }
        #expect(first.map(\.id) == ["toolu_f"])
        b.result("toolu_f")
        #expect(Self.selfHosted.next(b.log, now: now) == .finish(.requiresAction(["sevt_e5"]), unanswered: [], handledThrough: 6))
        b.add(.userToolConfirmation, ["tool_use_id": "sevt_e5", "result": "allow"])
        guard case .awaitWorker(let calls, _) = Self.selfHosted.next(b.log, now: now) else { Issue.record("allowed call not sent to the worker"); return }
        #expect(calls.map(\.id) == ["toolu_a"])
    }

    @Test func anInterruptAnswersWhatWaits() {
        var b = LogBuilder()
        b.user("look it up"); b.request(); b.answered()
        b.add(.agentCustomToolUse, ["id": "toolu_c", "name": "lookup", "input": [:]])
        b.add(.userInterrupt)
        guard case .finish(.interrupted, let unanswered, _) = Self.planner.next(b.log) else { Issue.record("not interrupted"); return }
        #expect(unanswered.map(\.id) == ["toolu_c"])
    }

    @Test func stopReasonsInManagedAgentsVocabularyReadBackAsTheirOutcome() {
        let cases: [(IdleReason, String, String)] = [
            (.endTurn, "end_turn", "end_turn"), (.interrupted, "end_turn", "interrupted"), (.maxTurns, "end_turn", "max_turns"),
            (.error, "retries_exhausted", "error"), (.budgetReached, "budget_reached", "budget_reached"),
            (.retriesExhausted, "retries_exhausted", "retries_exhausted"), (.refusal, "refusal", "refusal"),
            (.requiresAction(["sevt_1"]), "requires_action", "requires_action"),
        ]
        for (reason, type, name) in cases {
            #expect(reason.stopReason["type"]?.stringValue == type)
            #expect(StopReason.name(of: reason.stopReason) == name && reason.name == name)
        }
        // Rows written before #11 read as they meant.
        #expect(StopReason.name(of: ["type": "interrupted"]) == "interrupted")
    }
}
