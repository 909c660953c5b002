import DroverCore

/// One block of a message, in the Messages API's shapes.
public enum ContentBlock: Sendable, Equatable {
    case text(String)
    case thinking(String, signature: String?)
    case toolUse(id: String, name: String, input: JSONValue)
    case toolResult(toolUseID: String, content: String, isError: Bool)

    public var json: JSONValue {
        switch self {
        case .text(let text):
            return ["type": "text", "text": .string(text)]
        case .thinking(let text, let signature):
            var block: [String: JSONValue] = ["type": "thinking", "thinking": .string(text)]
            if let signature { block["signature"] = .string(signature) }
            return .object(block)
        case .toolUse(let id, let name, let input):
            return ["type": "tool_use", "id": .string(id), "name": .string(name), "input": input]
        case .toolResult(let id, let content, let isError):
            return ["type": "tool_result", "tool_use_id": .string(id), "content": .string(content), "is_error": .bool(isError)]
        }
    }

    /// Reads a block; unknown types become text of their JSON so nothing is silently lost.
    public init(json: JSONValue) {
        switch json["type"]?.stringValue {
        case "text": self = .text(json["text"]?.stringValue ?? "")
        case "thinking": self = .thinking(json["thinking"]?.stringValue ?? "", signature: json["signature"]?.stringValue)
        case "tool_use":
            self = .toolUse(id: json["id"]?.stringValue ?? "", name: json["name"]?.stringValue ?? "", input: json["input"] ?? [:])
        case "tool_result":
            let content: String
            switch json["content"] {
            case .string(let text)?: content = text
            case .array(let blocks)?: content = blocks.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
            default: content = ""
            }
            self = .toolResult(toolUseID: json["tool_use_id"]?.stringValue ?? "", content: content, isError: json["is_error"]?.boolValue ?? false)
        default: self = .text(json.text)
        }
    }
}

public struct Message: Sendable, Equatable {
    public enum Role: String, Sendable { case user, assistant }
    public var role: Role
    public var content: [ContentBlock]
    public init(role: Role, content: [ContentBlock]) {
        self.role = role
        self.content = content
    }
}

public struct ToolDefinition: Sendable, Equatable {
    public var name: String
    public var description: String
    public var inputSchema: JSONValue
    public init(name: String, description: String, inputSchema: JSONValue) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
    }

    public var json: JSONValue { ["name": .string(name), "description": .string(description), "input_schema": inputSchema] }
}

public struct ModelRequest: Sendable {
    public var model: String
    public var system: String
    public var messages: [Message]
    public var tools: [ToolDefinition]
    public var maxTokens: Int
    /// Sent as `metadata.user_id`: Drover puts the session id here.
    public var userID: String?

    public init(model: String, system: String, messages: [Message], tools: [ToolDefinition], maxTokens: Int = 4096, userID: String? = nil) {
        self.model = model
        self.system = system
        self.messages = messages
        self.tools = tools
        self.maxTokens = maxTokens
        self.userID = userID
    }
}

public struct ModelUsage: Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int
    /// Prompt-cache tokens, where the provider reports them (Anthropic does; 0 otherwise).
    public var cacheCreationInputTokens = 0
    public var cacheReadInputTokens = 0
    public init(inputTokens: Int = 0, outputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }

    /// Managed Agents' `model_usage`.
    public var json: JSONValue {
        [
            "input_tokens": .number(Double(inputTokens)), "output_tokens": .number(Double(outputTokens)),
            "cache_creation_input_tokens": .number(Double(cacheCreationInputTokens)),
            "cache_read_input_tokens": .number(Double(cacheReadInputTokens)),
        ]
    }
}

public struct ModelResponse: Sendable, Equatable {
    public var id: String
    public var content: [ContentBlock]
    /// `end_turn`, `tool_use`, `max_tokens`, `stop_sequence`, …
    public var stopReason: String
    public var usage: ModelUsage

    public init(id: String, content: [ContentBlock], stopReason: String, usage: ModelUsage) {
        self.id = id
        self.content = content
        self.stopReason = stopReason
        self.usage = usage
    }
}

/// A failed model call, with a stable code.
public struct ModelError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// 429 after every retry.
        public static let rateLimited = Code(rawValue: "rate_limited")
        /// 529 or 5xx after every retry.
        public static let overloaded = Code(rawValue: "overloaded")
        /// Another HTTP error (4xx): not retried.
        public static let http = Code(rawValue: "http_error")
        /// The stream did not follow the protocol (bad JSON, no message_stop, …).
        public static let malformedStream = Code(rawValue: "malformed_stream")
        /// The provider sent an `error` event.
        public static let streamError = Code(rawValue: "stream_error")
        /// The provider could not be reached.
        public static let network = Code(rawValue: "network")
        public static let cancelled = Code(rawValue: "cancelled")
    }

    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// Content of a response as it streams, for previews (`event_deltas`): a block's start, with its
/// position in the response's `content` and its kind, then its text in fragments. Best effort: a
/// call that is retried starts its blocks again.
public enum ModelDelta: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case text, thinking, toolUse }
    case blockStarted(index: Int, kind: Kind)
    case text(index: Int, String)
}

/// What a caller hears of a response while it streams.
public struct ModelStreamObserver: Sendable {
    /// Runs once, when the first content arrives.
    public var onFirstToken: @Sendable () -> Void
    /// Runs for every block start and text fragment, on the transfer thread (nil: nobody asks).
    public var onDelta: (@Sendable (ModelDelta) -> Void)?

    public init(onFirstToken: @escaping @Sendable () -> Void = {}, onDelta: (@Sendable (ModelDelta) -> Void)? = nil) {
        self.onFirstToken = onFirstToken
        self.onDelta = onDelta
    }
}

/// A model behind an HTTP API. Other providers fit by implementing this.
public protocol ModelProvider: Sendable {
    /// Calls the model, streaming, telling `observer` what arrives.
    func complete(_ request: ModelRequest, observer: ModelStreamObserver) async throws -> ModelResponse
}

extension ModelProvider {
    /// Calls the model; `onFirstToken` runs when the first content arrives.
    public func complete(_ request: ModelRequest, onFirstToken: @escaping @Sendable () -> Void) async throws -> ModelResponse {
        try await complete(request, observer: ModelStreamObserver(onFirstToken: onFirstToken))
    }
}
