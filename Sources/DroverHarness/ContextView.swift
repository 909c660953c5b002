import DroverCore
import DroverModel

/// The model's context as a view of the session log; the log itself is never changed.
///
/// User and agent events become alternating user/assistant messages. When the estimate exceeds
/// the budget, the oldest tool outputs are shortened to a marker that says where the full output
/// is in the log, until the view fits.
public struct ContextView: Sendable, Equatable {
    public var messages: [Message]
    /// Tool-use ids whose results the view shortened.
    public var elided: [String]
    /// Estimated tokens before and after shortening.
    public var estimatedTokens: (before: Int, after: Int)

    public static func == (a: ContextView, b: ContextView) -> Bool {
        a.messages == b.messages && a.elided == b.elided && a.estimatedTokens == b.estimatedTokens
    }

    /// Tool outputs shorter than this are never elided: the marker would save nothing.
    static let keepBelow = 200

    public init(events: [Event], budgetTokens: Int) {
        var messages: [Message] = []
        var resultSeqs: [String: Int64] = [:]
        func add(_ role: Message.Role, _ blocks: [ContentBlock]) {
            guard !blocks.isEmpty else { return }
            if let last = messages.last, last.role == role {
                messages[messages.count - 1].content += blocks
            } else {
                messages.append(Message(role: role, content: blocks))
            }
        }
        for event in events {
            guard let payload = try? JSONValue.parse(event.payload) else { continue }
            switch event.type {
            case .userMessage, .agentMessage:
                let blocks: [ContentBlock]
                switch payload["content"] {
                case .array(let list)?: blocks = list.map(ContentBlock.init(json:))
                case .string(let text)?: blocks = [.text(text)]
                default: blocks = []
                }
                add(event.type == .userMessage ? .user : .assistant, blocks)
            case .agentThinking:
                add(.assistant, [.thinking(payload["thinking"]?.stringValue ?? "", signature: payload["signature"]?.stringValue)])
            case .agentToolUse:
                add(.assistant, [.toolUse(id: payload["id"]?.stringValue ?? "", name: payload["name"]?.stringValue ?? "", input: payload["input"] ?? [:])])
            case .agentToolResult, .userCustomToolResult:
                let id = payload["tool_use_id"]?.stringValue ?? ""
                resultSeqs[id] = event.seq
                add(.user, [.toolResult(toolUseID: id, content: payload["content"]?.stringValue ?? "", isError: payload["is_error"]?.boolValue ?? false)])
            default:
                continue
            }
        }
        let before = Self.estimate(messages)
        var after = before
        var elided: [String] = []
        if before > budgetTokens {
            outer: for m in messages.indices where messages[m].role == .user {
                for b in messages[m].content.indices {
                    guard case .toolResult(let id, let content, let isError) = messages[m].content[b], content.utf8.count > Self.keepBelow else {
                        continue
                    }
                    let marker = "[output elided from the context view: \(content.utf8.count) bytes; the full output is event seq \(resultSeqs[id] ?? 0) of the session log]"
                    messages[m].content[b] = .toolResult(toolUseID: id, content: marker, isError: isError)
                    elided.append(id)
                    after -= (content.utf8.count - marker.utf8.count) / 4
                    if after <= budgetTokens { break outer }
                }
            }
        }
        self.messages = messages
        self.elided = elided
        self.estimatedTokens = (before, after)
    }

    /// About four bytes per token: a budget check, not a tokenizer.
    static func estimate(_ messages: [Message]) -> Int {
        messages.reduce(0) { total, message in
            total + message.content.reduce(0) { $0 + $1.json.text.utf8.count } / 4 + 4
        }
    }
}
