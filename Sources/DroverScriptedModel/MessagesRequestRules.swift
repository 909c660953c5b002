import DroverCore

/// Why a model API refused a request: the HTTP status, the error type and the message, as the
/// real API words them.
public typealias RequestRefusal = APIError

/// The checks the Anthropic Messages API makes before it answers, so that the scripted model
/// refuses every request the real API refuses, with the same status, type and wording.
///
/// A stand-in that accepts what the real API refuses hides bugs until production: the harness
/// once built `[text, tool_result]` user turns that only the real API rejected. Where the real API
/// has since relaxed a rule (merging consecutive same-role turns), this keeps the stricter one:
/// strictness here costs nothing, leniency hides bugs.
public enum MessagesRequestRules {
    static let topLevelKeys: Set<String> = [
        "model", "messages", "max_tokens", "system", "stream", "tools", "tool_choice", "metadata", "temperature", "top_p",
        "top_k", "stop_sequences", "thinking", "service_tier", "container", "mcp_servers", "context_management",
    ]
    static let blockTypes: Set<String> = [
        "text", "image", "document", "thinking", "redacted_thinking", "tool_use", "tool_result", "server_tool_use",
        "web_search_tool_result", "search_result",
    ]

    /// Checks headers (names lower-cased) and the body; nil when the real API would accept them.
    public static func check(headers: [String: String], body: [UInt8]) -> RequestRefusal? {
        if (headers["x-api-key"] ?? "").isEmpty && !(headers["authorization"] ?? "").hasPrefix("Bearer ") {
            return RequestRefusal(401, "authentication_error", "x-api-key header is required")
        }
        if (headers["anthropic-version"] ?? "").isEmpty {
            return .invalid("anthropic-version: header is required")
        }
        guard let request = try? JSONValue.parse(body), case .object(let members) = request else {
            return .invalid("There was an error parsing the body of your request. Please make sure it is valid JSON.")
        }
        do {
            try checkRequest(members)
            return nil
        } catch let refusal as RequestRefusal {
            return refusal
        } catch {
            return .invalid(String(describing: error))
        }
    }

    static func checkRequest(_ members: [String: JSONValue]) throws {
        if let extra = members.keys.sorted().first(where: { !topLevelKeys.contains($0) }) {
            throw RequestRefusal.invalid("\(extra): Extra inputs are not permitted")
        }
        guard let model = members["model"] else { throw RequestRefusal.invalid("model: Field required") }
        guard case .string(let name) = model, !name.isEmpty else { throw RequestRefusal.invalid("model: Input should be a valid string") }
        guard let maxTokens = members["max_tokens"] else { throw RequestRefusal.invalid("max_tokens: Field required") }
        guard let tokens = maxTokens.intValue else { throw RequestRefusal.invalid("max_tokens: Input should be a valid integer") }
        guard tokens >= 1 else { throw RequestRefusal.invalid("max_tokens: Input should be greater than or equal to 1") }
        if let stream = members["stream"], stream.boolValue == nil {
            throw RequestRefusal.invalid("stream: Input should be a valid boolean")
        }
        try checkSystem(members["system"])
        try checkMetadata(members["metadata"])
        try checkTools(members["tools"])
        guard let messages = members["messages"] else { throw RequestRefusal.invalid("messages: Field required") }
        guard case .array(let list) = messages else { throw RequestRefusal.invalid("messages: Input should be a valid list") }
        try checkMessages(list)
    }

    static func checkSystem(_ system: JSONValue?) throws {
        switch system {
        case nil, .string?: return
        case .array(let blocks)?:
            for (index, block) in blocks.enumerated() {
                guard block["type"]?.stringValue == "text", let text = block["text"]?.stringValue else {
                    throw RequestRefusal.invalid("system.\(index): Input tag does not match the expected tag 'text'")
                }
                if text.isEmpty { throw RequestRefusal.invalid("system: text content blocks must be non-empty") }
            }
        default:
            throw RequestRefusal.invalid("system: Input should be a valid string or a list of text blocks")
        }
    }

    static func checkMetadata(_ metadata: JSONValue?) throws {
        guard let metadata else { return }
        guard case .object(let members) = metadata else { throw RequestRefusal.invalid("metadata: Input should be a valid dictionary") }
        if let extra = members.keys.sorted().first(where: { $0 != "user_id" }) {
            throw RequestRefusal.invalid("metadata.\(extra): Extra inputs are not permitted")
        }
        if let user = members["user_id"] {
            guard case .string(let id) = user else { throw RequestRefusal.invalid("metadata.user_id: Input should be a valid string") }
            if id.count > 256 { throw RequestRefusal.invalid("metadata.user_id: String should have at most 256 characters") }
        }
    }

    static func checkTools(_ tools: JSONValue?) throws {
        guard let tools else { return }
        guard case .array(let list) = tools else { throw RequestRefusal.invalid("tools: Input should be a valid list") }
        var names = Set<String>()
        for (index, tool) in list.enumerated() {
            guard case .object(let members) = tool else { throw RequestRefusal.invalid("tools.\(index): Input should be a valid dictionary") }
            if let extra = members.keys.sorted().first(where: { !["name", "description", "input_schema", "type", "cache_control"].contains($0) }) {
                throw RequestRefusal.invalid("tools.\(index).custom.\(extra): Extra inputs are not permitted")
            }
            guard let name = members["name"]?.stringValue else { throw RequestRefusal.invalid("tools.\(index).custom.name: Field required") }
            if name.isEmpty || name.count > 128 || !name.unicodeScalars.allSatisfy({ isIdentifierScalar($0) }) {
                throw RequestRefusal.invalid("tools.\(index).custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'")
            }
            guard case .object(let schema)? = members["input_schema"] else {
                throw RequestRefusal.invalid("tools.\(index).custom.input_schema: Field required")
            }
            if schema["type"]?.stringValue != "object" {
                throw RequestRefusal.invalid("tools.\(index).custom.input_schema.type: Input should be 'object'")
            }
            if let description = members["description"], description.stringValue == nil {
                throw RequestRefusal.invalid("tools.\(index).custom.description: Input should be a valid string")
            }
            if !names.insert(name).inserted { throw RequestRefusal.invalid("tools: Tool names must be unique.") }
        }
    }

    static func isIdentifierScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-": true
        default: false
        }
    }

    static func checkMessages(_ messages: [JSONValue]) throws {
        if messages.isEmpty { throw RequestRefusal.invalid("messages: at least one message is required") }
        var toolUseIDs = Set<String>()
        /// The tool uses of the previous assistant message, which this user message must answer first.
        var unanswered: [String] = []
        var previousRole: String?
        for (index, message) in messages.enumerated() {
            guard case .object(let members) = message else { throw RequestRefusal.invalid("messages.\(index): Input should be a valid dictionary") }
            if let extra = members.keys.sorted().first(where: { $0 != "role" && $0 != "content" }) {
                throw RequestRefusal.invalid("messages.\(index).\(extra): Extra inputs are not permitted")
            }
            guard let role = members["role"]?.stringValue, role == "user" || role == "assistant" else {
                throw RequestRefusal.invalid("messages.\(index).role: Input should be 'user' or 'assistant'")
            }
            if index == 0 && role != "user" { throw RequestRefusal.invalid(#"messages: first message must use the "user" role"#) }
            if role == previousRole {
                throw RequestRefusal.invalid(#"messages: roles must alternate between "user" and "assistant", but found multiple "\#(role)" roles in a row"#)
            }
            let blocks = try contentBlocks(members["content"], at: index)
            if blocks.isEmpty {
                throw RequestRefusal.invalid("messages.\(index): all messages must have non-empty content except for the optional final assistant message")
            }
            if role == "user" {
                // The tool results must open the message, one per tool use, before any other block.
                let leading = blocks.prefix { $0["type"]?.stringValue == "tool_result" }.compactMap { $0["tool_use_id"]?.stringValue }
                let missing = unanswered.filter { !leading.contains($0) }
                if !missing.isEmpty {
                    throw RequestRefusal.invalid(
                        "messages.\(index - 1): `tool_use` ids were found without `tool_result` blocks immediately after: "
                            + missing.joined(separator: ", ")
                            + ". Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
                }
                for (b, block) in blocks.enumerated() where block["type"]?.stringValue == "tool_result" {
                    let id = block["tool_use_id"]?.stringValue ?? ""
                    if !unanswered.contains(id) || b >= leading.count {
                        throw RequestRefusal.invalid(
                            "messages.\(index).content.\(b): unexpected `tool_use_id` found in `tool_result` blocks: \(id). "
                                + "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
                    }
                }
                unanswered = []
            } else {
                for (b, block) in blocks.enumerated() {
                    switch block["type"]?.stringValue {
                    case "tool_use":
                        let id = block["id"]?.stringValue ?? ""
                        if !toolUseIDs.insert(id).inserted { throw RequestRefusal.invalid("messages.\(index).content.\(b): `tool_use` ids must be unique") }
                        unanswered.append(id)
                    case "tool_result":
                        throw RequestRefusal.invalid("messages.\(index).content.\(b): `tool_result` blocks can only be in `user` messages")
                    default: continue
                    }
                }
            }
            previousRole = role
        }
        if previousRole == "assistant" {
            throw RequestRefusal.invalid("This model does not support assistant message prefill. The conversation must end with a user message.")
        }
    }

    /// The message's content as blocks, each checked for shape.
    static func contentBlocks(_ content: JSONValue?, at index: Int) throws -> [JSONValue] {
        switch content {
        case .string(let text)?:
            return text.isEmpty ? [] : [["type": "text", "text": .string(text)]]
        case .array(let blocks)?:
            for (b, block) in blocks.enumerated() { try checkBlock(block, at: "messages.\(index).content.\(b)") }
            return blocks
        case nil:
            throw RequestRefusal.invalid("messages.\(index).content: Field required")
        default:
            throw RequestRefusal.invalid("messages.\(index).content: Input should be a valid string or a list of content blocks")
        }
    }

    static func checkBlock(_ block: JSONValue, at path: String) throws {
        guard case .object(let members) = block, let type = members["type"]?.stringValue else {
            throw RequestRefusal.invalid("\(path): Input should be a valid dictionary with a type")
        }
        guard blockTypes.contains(type) else {
            throw RequestRefusal.invalid("\(path).type: Input tag '\(type)' found using 'type' does not match any of the expected tags")
        }
        switch type {
        case "text":
            guard let text = members["text"]?.stringValue else { throw RequestRefusal.invalid("\(path).text: Field required") }
            if text.isEmpty { throw RequestRefusal.invalid("messages: text content blocks must be non-empty") }
            if text.allSatisfy(\.isWhitespace) { throw RequestRefusal.invalid("messages: text content blocks must contain non-whitespace text") }
        case "thinking":
            guard members["thinking"]?.stringValue != nil else { throw RequestRefusal.invalid("\(path).thinking: Field required") }
            guard members["signature"]?.stringValue != nil else { throw RequestRefusal.invalid("\(path).signature: Field required") }
        case "tool_use":
            guard let id = members["id"]?.stringValue else { throw RequestRefusal.invalid("\(path).id: Field required") }
            if id.isEmpty || !id.unicodeScalars.allSatisfy(isIdentifierScalar) {
                throw RequestRefusal.invalid("\(path).id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            }
            guard members["name"]?.stringValue?.isEmpty == false else { throw RequestRefusal.invalid("\(path).name: Field required") }
            guard case .object? = members["input"] else { throw RequestRefusal.invalid("\(path).input: Input should be a valid dictionary") }
        case "tool_result":
            guard members["tool_use_id"]?.stringValue?.isEmpty == false else { throw RequestRefusal.invalid("\(path).tool_use_id: Field required") }
            if let isError = members["is_error"], isError.boolValue == nil {
                throw RequestRefusal.invalid("\(path).is_error: Input should be a valid boolean")
            }
            switch members["content"] {
            case nil, .string?: break
            case .array(let inner)?:
                for (i, item) in inner.enumerated() {
                    guard let innerType = item["type"]?.stringValue, ["text", "image", "document", "search_result"].contains(innerType) else {
                        throw RequestRefusal.invalid("\(path).content.\(i): Input tag does not match any of the expected tags")
                    }
                    try checkBlock(item, at: "\(path).content.\(i)")
                }
            default:
                throw RequestRefusal.invalid("\(path).content: Input should be a valid string or list")
            }
        default:
            return
        }
    }
}
