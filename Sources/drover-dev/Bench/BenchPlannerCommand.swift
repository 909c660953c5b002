import DroverCLI
import DroverCore
import DroverHarness
import Foundation

/// `drover bench planner`: what one step of the agent loop costs the harness to decide, by the
/// length of the session's log (issue #27, item 9: a long session must not cost more per step).
/// Pure: no database, no model; the decision alone (`TurnPlanner.next`, which builds the context
/// view when the step is a model call).
struct BenchPlannerCommand: Command {
    static let name = "bench planner"
    static let summary = "benchmark the agent loop's per-step decision by log length"
    static let help = """
        usage: drover bench planner [--lengths LIST] [--json]

        Builds logs of each length in --lengths (default 100,1000,10000 events: a user message,
        then turns of a model call, a bash call and its result) and times TurnPlanner.next on
        them: with the log ending in a tool use (the step runs it) and in a tool result (the
        step calls the model, so the context view is built). Prints microseconds per decision
        and each length's ratio to the shortest.

          --json        one JSON object instead of a table
        """
    static let options: Set<String> = ["lengths"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let lengths = try (arguments.value("lengths") ?? "100,1000,10000").split(separator: ",").map {
            guard let n = Int($0), n >= 8 else { throw UsageError("--lengths takes a list like 100,1000,10000") }
            return n
        }
        let planner = TurnPlanner(epoch: 1, maxTurns: 1_000_000, tokenBudget: nil, contextBudgetTokens: 200_000)
        var results: [BenchResult] = []
        var first: (tools: Double, model: Double)?
        for length in lengths {
            let (pendingUse, answered) = logs(length)
            let tools = time { _ = planner.next(pendingUse) }
            let model = time { _ = planner.next(answered) }
            first = first ?? (tools, model)
            results += [
                BenchResult(name: "run_tools_step_us_\(length)", value: tools * 1e6, unit: "µs"),
                BenchResult(name: "call_model_step_us_\(length)", value: model * 1e6, unit: "µs"),
                BenchResult(name: "run_tools_ratio_\(length)", value: tools / first!.tools, unit: "× the shortest"),
                BenchResult(name: "call_model_ratio_\(length)", value: model / first!.model, unit: "× the shortest"),
            ]
            Progress.say(String(format: "%d events: run-tools step %.1f µs, call-model step %.1f µs", length, tools * 1e6, model * 1e6))
        }
        BenchReport.print("drover bench planner", results, json: arguments.has("json"), extra: [
            ("benchmark", "planner"), ("lengths", lengths.map(String.init).joined(separator: ",")),
        ])
    }

    /// A log of about `length` events ending in a tool use without a result, and the same with
    /// its result.
    static func logs(_ length: Int) -> (pendingUse: SessionLog, answered: SessionLog) {
        var events: [Event] = []
        func add(_ type: EventType, _ payload: JSONValue) {
            let seq = Int64(events.count + 1)
            events.append(Event(sessionID: SessionID("sesn_bench"), seq: seq, id: UUID().uuidString, type: type, payload: payload.text,
                                createdAt: Date(), leaseEpoch: type.isUserSide ? nil : 1))
        }
        add(.userMessage, ["content": [["type": "text", "text": "go"]]])
        var turn = 0
        while events.count + 4 <= length {
            turn += 1
            let id = JSONValue.string("toolu_\(turn)")
            add(.spanModelRequestStart, ["model": "m", "turn": .number(Double(turn))])
            add(.spanModelRequestEnd, ["stop_reason": "tool_use", "model_usage": ["input_tokens": 100, "output_tokens": 20]])
            add(.agentToolUse, ["id": id, "name": "bash", "input": ["command": .string("echo \(turn)")]])
            add(.agentToolResult, ["tool_use_id": id, "content": .string("output of call \(turn)"), "is_error": false])
        }
        var pending = events
        pending.removeLast()
        return (SessionLog(events: pending), SessionLog(events: events))
    }

    /// Seconds per call of `body`, over enough calls to take about 0.3 s.
    static func time(_ body: () -> Void) -> Double {
        body()
        var calls = 0
        let started = ContinuousClock.now
        repeat {
            body()
            calls += 1
        } while ContinuousClock.now - started < .milliseconds(300)
        return (ContinuousClock.now - started).seconds / Double(calls)
    }
}
