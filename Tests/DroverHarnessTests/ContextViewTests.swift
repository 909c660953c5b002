import DroverCore
import DroverModel
import Foundation
import Testing
@testable import DroverHarness

@Suite struct ContextViewTests {
    static func event(_ seq: Int64, _ type: EventType, _ payload: JSONValue) -> Event {
        Event(sessionID: SessionID("s"), seq: seq, id: "e\(seq)", type: type, payload: payload.text, createdAt: Date(), leaseEpoch: nil)
    }

    static let log: [Event] = [
        event(1, .userMessage, ["content": [["type": "text", "text": "go"]]]),
        event(2, .sessionStatusRunning, [:]),
        event(3, .spanModelRequestStart, [:]),
        event(4, .agentThinking, ["thinking": "hmm", "signature": "sig"]),
        event(5, .agentMessage, ["content": [["type": "text", "text": "running"]]]),
        event(6, .agentToolUse, ["id": "t1", "name": "bash", "input": ["command": "yes | head -2000"]]),
        event(7, .agentToolUse, ["id": "t2", "name": "read", "input": ["path": "a"]]),
        event(8, .agentToolResult, ["tool_use_id": "t1", "content": .string(String(repeating: "y\n", count: 2000)), "is_error": false]),
        event(9, .agentToolResult, ["tool_use_id": "t2", "content": "short", "is_error": true]),
        event(10, .userMessage, ["content": [["type": "text", "text": "and?"]]]),
        event(11, .agentMessage, ["content": [["type": "text", "text": "done"]]]),
    ]

    @Test func theLogBecomesAlternatingMessages() {
        let view = ContextView(events: Self.log, budgetTokens: 1_000_000)
        #expect(view.elided.isEmpty)
        #expect(view.messages.map(\.role) == [.user, .assistant, .user, .assistant])
        #expect(view.messages[1].content == [
            .thinking("hmm", signature: "sig"), .text("running"),
            .toolUse(id: "t1", name: "bash", input: ["command": "yes | head -2000"]), .toolUse(id: "t2", name: "read", input: ["path": "a"]),
        ])
        // Tool results and the next user message share one user turn, results first.
        #expect(view.messages[2].content.count == 3)
        #expect(view.messages[2].content[1] == .toolResult(toolUseID: "t2", content: "short", isError: true))
        #expect(view.messages[2].content[2] == .text("and?"))
    }

    /// `system.message`s are not turns of the conversation: their text goes to the system prompt,
    /// in order, from the turn they came with on (issue #23, item 5).
    @Test func systemMessagesJoinTheSystemPromptNotTheMessages() {
        let log = Self.log + [
            Self.event(12, .systemMessage, ["content": [["type": "text", "text": "Answer in French."]]]),
            Self.event(13, .userMessage, ["content": [["type": "text", "text": "more"]]]),
            Self.event(14, .systemMessage, ["content": [["type": "text", "text": "Be brief."], ["type": "text", "text": "Really."]]]),
        ]
        let view = ContextView(events: log, budgetTokens: 1_000_000)
        #expect(view.system == ["Answer in French.", "Be brief.\nReally."])
        #expect(view.messages == ContextView(events: Self.log + [log[12]], budgetTokens: 1_000_000).messages, "the system messages change no message")
    }

    @Test func overTheBudgetTheOldestLongToolOutputIsElidedWithAPointerToTheLog() {
        let view = ContextView(events: Self.log, budgetTokens: 300)
        #expect(view.elided == ["t1"])
        #expect(view.estimatedTokens.before > 300 && view.estimatedTokens.after < view.estimatedTokens.before)
        guard case .toolResult(let id, let content, _) = view.messages[2].content[0] else { Issue.record("no result"); return }
        #expect(id == "t1")
        #expect(content.contains("4000 bytes") && content.contains("event seq 8"))
        // Short outputs stay as they are.
        #expect(view.messages[2].content[1] == .toolResult(toolUseID: "t2", content: "short", isError: true))
    }

    @Test func pendingToolUsesAndInterrupts() {
        let pending = TurnPlanner.pendingToolUses(SessionLog(events: Array(Self.log.prefix(8))), epoch: 1)
        #expect(pending.map(\.id) == ["t2"])
        var withInterrupt = Self.log
        withInterrupt.append(Self.event(12, .userInterrupt, [:]))
        #expect(TurnPlanner.hasUnhandledInterrupt(SessionLog(events: withInterrupt)))
        withInterrupt.append(Self.event(13, .sessionStatusIdle, ["stop_reason": ["type": "interrupted"]]))
        #expect(!TurnPlanner.hasUnhandledInterrupt(SessionLog(events: withInterrupt)))
        withInterrupt.append(Self.event(14, .userInterrupt, [:]))
        withInterrupt.append(Self.event(15, .userMessage, ["content": []]))
        #expect(!TurnPlanner.hasUnhandledInterrupt(SessionLog(events: withInterrupt)), "a newer message wins over an older interrupt")
    }
}
