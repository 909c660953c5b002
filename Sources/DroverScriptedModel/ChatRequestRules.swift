import DroverCore

/// The checks an OpenAI-compatible chat-completions API makes before it answers: the scripted
/// model's OpenAI side refuses what OpenAI refuses, in OpenAI's error shape.
public enum ChatRequestRules {
    static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]

    /// Checks headers (names lower-cased) and the body; nil when the request would be accepted.
    public static func check(headers: [String: String], body: [UInt8]) -> (refusal: RequestRefusal, param: String?)? {
        guard (headers["authorization"] ?? "").hasPrefix("Bearer "), (headers["authorization"] ?? "").count > 7 else {
            return (RequestRefusal(401, "invalid_request_error",
                                   "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."), nil)
        }
        guard let request = try? JSONValue.parse(body), case .object(let members) = request else {
            return (.invalid("We could not parse the JSON body of your request."), nil)
        }
        guard members["model"]?.stringValue?.isEmpty == false else { return (.invalid("you must provide a model parameter"), "model") }
        guard case .array(let messages)? = members["messages"] else { return (.invalid("Missing required parameter: 'messages'."), "messages") }
        if messages.isEmpty { return (.invalid("[] is too short - 'messages'"), "messages") }
        var awaiting: [String] = []
        var callIDs = Set<String>()
        for (index, message) in messages.enumerated() {
            guard let role = message["role"]?.stringValue, roles.contains(role) else {
                return (.invalid("Invalid value: '\(message["role"]?.stringValue ?? "")'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'."),
                        "messages[\(index)].role")
            }
            if role == "tool" {
                let id = message["tool_call_id"]?.stringValue ?? ""
                guard let position = awaiting.firstIndex(of: id) else {
                    return (.invalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."),
                            "messages.[\(index)].role")
                }
                awaiting.remove(at: position)
                continue
            }
            if !awaiting.isEmpty {
                return (.invalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
                                 + "The following tool_call_ids did not have response messages: " + awaiting.joined(separator: ", ")),
                        "messages.[\(index)].role")
            }
            if role == "assistant", case .array(let calls)? = message["tool_calls"] {
                if calls.isEmpty { return (.invalid("[] is too short - 'messages.\(index).tool_calls'"), "messages.[\(index)].tool_calls") }
                for (c, call) in calls.enumerated() {
                    guard let id = call["id"]?.stringValue, !id.isEmpty else {
                        return (.invalid("Missing required parameter: 'messages[\(index)].tool_calls[\(c)].id'."), "messages.[\(index)].tool_calls.[\(c)].id")
                    }
                    guard call["type"]?.stringValue == "function", call["function"]?["name"]?.stringValue?.isEmpty == false,
                          call["function"]?["arguments"]?.stringValue != nil else {
                        return (.invalid("Invalid 'messages[\(index)].tool_calls[\(c)]': a function call needs a name and arguments."),
                                "messages.[\(index)].tool_calls.[\(c)]")
                    }
                    if !callIDs.insert(id).inserted {
                        return (.invalid("Duplicate value for 'tool_call_id' of \(id) in message[\(index)]"), "messages.[\(index)].tool_calls")
                    }
                    awaiting.append(id)
                }
            } else if role == "assistant" {
                if message["content"] == nil || message["content"] == .null {
                    return (.invalid("Invalid value for 'content': expected a string, got null."), "messages.[\(index)].content")
                }
            }
        }
        if !awaiting.isEmpty {
            return (.invalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
                             + "The following tool_call_ids did not have response messages: " + awaiting.joined(separator: ", ")),
                    "messages")
        }
        return nil
    }
}
