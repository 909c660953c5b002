import DroverCore
import DroverModel

/// The model's context as a view of the session log; the log itself is never changed.
///
/// The log keeps the true order of what happened; the view reorders only what the Messages API
/// requires, so that it is valid whatever order the log has:
/// - user and agent events become alternating user/assistant messages, starting with the user;
/// - the results of an assistant turn's tool uses open the next user message, before any other
///   block: a user message that arrived while the tools ran is placed after them;
/// - a user message that arrived while a model call was in flight (logged between the request's
///   start and its answer) was not seen by that call: it follows the answer, never precedes it;
/// - a tool use with no result (it cannot reach the model otherwise) gets an error result that
///   says so; a result with no matching tool use is left out;
/// - empty text, and thinking without a signature, are left out (the API refuses both).
///
/// When the estimate exceeds the budget, the oldest tool outputs are shortened to a marker that
/// says where the full output is in the log, until the view fits.
public struct ContextView: Sendable, Equatable {
    public var messages: [Message]
    /// The text of every `system.message` so far, in order: appended to the system prompt.
    public var system: [String]
    /// Tool-use ids whose results the view shortened.
    public var elided: [String]
    /// Estimated tokens before and after shortening.
    public var estimatedTokens: (before: Int, after: Int)

    public static func == (a: ContextView, b: ContextView) -> Bool {
        a.messages == b.messages && a.system == b.system && a.elided == b.elided && a.estimatedTokens == b.estimatedTokens
    }

    /// Tool outputs shorter than this are never elided: the marker would save nothing.
    static let keepBelow = 200
    static let missingResult = "No result was recorded for this call."

    public init(events: [Event], budgetTokens: Int) {
        self.init(log: SessionLog(events: events), budgetTokens: budgetTokens)
    }

    public init(log: SessionLog, budgetTokens: Int) {
        // The log keeps the fold up to date as it grows; finishing works on a copy.
        var builder = log.context
        var messages = builder.finish()
        let before = builder.estimate
        var after = before
        var elided: [String] = []
        if before > budgetTokens {
            outer: for m in messages.indices where messages[m].role == .user {
                for b in messages[m].content.indices {
                    guard case .toolResult(let id, let content, let isError) = messages[m].content[b], content.utf8.count > Self.keepBelow else {
                        continue
                    }
                    let marker = "[output elided from the context view: \(content.utf8.count) bytes; the full output is event seq \(builder.resultSeqs[id] ?? 0) of the session log]"
                    messages[m].content[b] = .toolResult(toolUseID: id, content: marker, isError: isError)
                    elided.append(id)
                    after -= (content.utf8.count - marker.utf8.count) / 4
                    if after <= budgetTokens { break outer }
                }
            }
        }
        self.messages = messages
        self.system = builder.system
        self.elided = elided
        self.estimatedTokens = (before, after)
    }

    /// Walks the log once, holding back user blocks while an assistant turn's tool results are
    /// outstanding.
    struct Builder {
        var messages: [Message] = []
        /// Tool uses of the latest assistant message still without a result, in order.
        var awaiting: [String] = []
        /// Results for the latest assistant message's tool uses, in arrival order.
        var results: [ContentBlock] = []
        /// User blocks that arrived while results were outstanding.
        var held: [ContentBlock] = []
        var resultSeqs: [String: Int64] = [:]
        /// Tool-use ids by their event's API id: custom tool results name the event.
        var toolUseIDs: [String: String] = [:]
        /// A model request was logged and its answer has not been (or is being) read.
        var requestInFlight = false
        var answerOpen = false
        /// User blocks that arrived during a model call: they go after its answer.
        var duringCall: [ContentBlock] = []
        /// `system.message` texts, in log order.
        var system: [String] = []
        /// The bytes of every block in `messages` as JSON, summed as they are added (the size
        /// estimate then costs nothing per view).
        var bytes = 0

        /// About four bytes per token, and a few tokens per message: a budget check, not a tokenizer.
        var estimate: Int { bytes / 4 + 4 * messages.count }

        /// `workflows`: the session's runs as of this entry (a run's threads reply to the run; the
        /// agent reads the run's end).
        mutating func add(_ entry: SessionLog.Entry, workflows: WorkflowProgress = WorkflowProgress()) {
            let payload = entry.json
            let answerBlock = entry.type == .agentMessage || entry.type == .agentThinking || entry.type.isToolUse
            if answerBlock && requestInFlight {
                // The answer itself shows the call returned (logs without its end span).
                requestInFlight = false
                answerOpen = true
            }
            if answerOpen && !answerBlock
                && ![EventType.userMessage, .systemMessage, .userDefineOutcome, .agentThreadMessageReceived, .workflowRunStatusEnded].contains(entry.type) {
                answerOpen = false
                releaseDuringCall()
            }
            switch entry.type {
            case .spanModelRequestStart:
                // What arrived during a call that never answered was seen by this one.
                releaseDuringCall()
                requestInFlight = true
            case .spanModelRequestEnd:
                requestInFlight = false
                answerOpen = true
            case .userMessage:
                addInput(Self.blocks(payload["content"]))
            case .userDefineOutcome:
                // The task as the agent sees it; the rubric is the grader's.
                addInput([.text(OutcomeGrader.assignment(payload))])
            case .agentThreadMessageReceived:
                guard !workflows.isWorkflowThread(payload["from_session_thread_id"]?.stringValue ?? "") else { return }
                addInput([.text(SessionThreads.reply(payload))])
            case .workflowRunStatusEnded:
                addInput([.text(workflows.summary(payload["workflow_run_id"]?.stringValue ?? ""))])
            case .spanOutcomeEvaluationEnd:
                if let feedback = OutcomeGrader.feedback(payload) { addUser([.text(feedback)]) }
            case .systemMessage:
                let text = Self.text(payload["content"])
                if !text.isEmpty { system.append(text) }
            case .agentMessage:
                closeToolTurn()
                append(.assistant, Self.blocks(payload["content"]))
            case .agentThinking:
                closeToolTurn()
                if let signature = payload["signature"]?.stringValue {
                    append(.assistant, [.thinking(payload["thinking"]?.stringValue ?? "", signature: signature)])
                }
            case .agentToolUse, .agentCustomToolUse, .agentMCPToolUse:
                closeToolTurn()
                let id = payload["id"]?.stringValue ?? ""
                guard !id.isEmpty else { return }
                toolUseIDs[entry.event.apiID] = id
                append(.assistant, [.toolUse(id: id, name: payload["name"]?.stringValue ?? "", input: payload["input"] ?? [:])])
                awaiting.append(id)
            case .agentToolResult, .userCustomToolResult, .agentMCPToolResult, .userToolResult:
                // A client's result names the tool use's event (`custom_tool_use_id`, and
                // `mcp_tool_use_id` for MCP, `tool_use_id` for a worker's); older logs and the
                // harness name the tool use itself.
                let named = payload["custom_tool_use_id"]?.stringValue ?? payload["mcp_tool_use_id"]?.stringValue
                    ?? payload["tool_use_id"]?.stringValue ?? ""
                let id = toolUseIDs[named] ?? named
                guard let position = awaiting.firstIndex(of: id) else { return }
                awaiting.remove(at: position)
                resultSeqs[id] = entry.seq
                results.append(.toolResult(toolUseID: id, content: Self.text(payload["content"]), isError: payload["is_error"]?.boolValue ?? false))
                if awaiting.isEmpty { flushResults() }
            default:
                return
            }
        }

        /// Input (a user message, an outcome, a thread's reply): after the answer of a call under
        /// way, else now.
        mutating func addInput(_ blocks: [ContentBlock]) {
            if requestInFlight || answerOpen { duringCall += blocks } else { addUser(blocks) }
        }

        mutating func addUser(_ blocks: [ContentBlock]) {
            if awaiting.isEmpty { append(.user, blocks) } else { held += blocks }
        }

        mutating func releaseDuringCall() {
            addUser(duringCall)
            duringCall = []
        }

        /// Before an assistant block of the next response: every tool use of the turn before it
        /// gets its result. Blocks of one response (parallel tool uses) come before any result
        /// or user block, and stay in one assistant message.
        mutating func closeToolTurn() {
            guard !awaiting.isEmpty, !results.isEmpty || !held.isEmpty else { return }
            forceCloseToolTurn()
        }

        mutating func forceCloseToolTurn() {
            guard !awaiting.isEmpty else { return }
            for id in awaiting { results.append(.toolResult(toolUseID: id, content: ContextView.missingResult, isError: true)) }
            awaiting = []
            flushResults()
        }

        /// The results open the user message; what the user said meanwhile follows them.
        mutating func flushResults() {
            append(.user, results + held)
            results = []
            held = []
        }

        mutating func append(_ role: Message.Role, _ blocks: [ContentBlock]) {
            guard !blocks.isEmpty else { return }
            // The first message is the user's; nothing the agent said before it can be sent.
            if messages.isEmpty && role == .assistant { return }
            bytes += blocks.reduce(0) { $0 + $1.json.text.utf8.count }
            if let last = messages.last, last.role == role {
                messages[messages.count - 1].content += blocks
            } else {
                messages.append(Message(role: role, content: blocks))
            }
        }

        mutating func finish() -> [Message] {
            releaseDuringCall()
            forceCloseToolTurn()
            if !held.isEmpty { append(.user, held) }
            held = []
            return messages
        }

        /// A result's content as text: a string, or the text of `[{type: text, text}]` blocks (what
        /// clients send in `user.custom_tool_result`).
        static func text(_ content: JSONValue?) -> String {
            switch content {
            case .string(let text)?: return text
            case .array(let list)?: return list.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
            default: return ""
            }
        }

        /// Content as blocks, without the empty text the API refuses.
        static func blocks(_ content: JSONValue?) -> [ContentBlock] {
            let blocks: [ContentBlock]
            switch content {
            case .array(let list)?: blocks = list.map(ContentBlock.init(json:))
            case .string(let text)?: blocks = [.text(text)]
            default: blocks = []
            }
            return blocks.filter { block in
                if case .text(let text) = block { return !text.allSatisfy(\.isWhitespace) }
                return true
            }
        }
    }
}
