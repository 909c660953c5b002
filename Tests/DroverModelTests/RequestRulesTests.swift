import DroverCore
import DroverScriptedModel
import Testing

/// Each rule of the strict stand-ins refuses its bad request, as the real API words it.
@Suite struct RequestRulesTests {
    static let headers = ["x-api-key": "k", "anthropic-version": "2023-06-01"]

    static func body(_ messages: JSONValue, extra: [String: JSONValue] = [:]) -> [UInt8] {
        var members: [String: JSONValue] = ["model": "m", "max_tokens": 100, "messages": messages]
        for (key, value) in extra { members[key] = value }
        return Array(JSONValue.object(members).text.utf8)
    }

    static func text(_ t: String) -> JSONValue { ["type": "text", "text": .string(t)] }
    static func use(_ id: String) -> JSONValue { ["type": "tool_use", "id": .string(id), "name": "bash", "input": [:]] }
    static func result(_ id: String) -> JSONValue { ["type": "tool_result", "tool_use_id": .string(id), "content": "ok"] }
    static func user(_ blocks: JSONValue...) -> JSONValue { ["role": "user", "content": .array(blocks)] }
    static func assistant(_ blocks: JSONValue...) -> JSONValue { ["role": "assistant", "content": .array(blocks)] }

    @Test func aWellFormedConversationWithParallelToolsIsAccepted() {
        let messages: JSONValue = [
            Self.user(Self.text("go")), Self.assistant(Self.text("two"), Self.use("a"), Self.use("b")),
            Self.user(Self.result("a"), Self.result("b"), Self.text("also this")),
        ]
        #expect(MessagesRequestRules.check(headers: Self.headers, body: Self.body(messages)) == nil)
    }

    @Test(arguments: [
        // (why, messages, the message's distinctive part)
        ("the first message is the assistant's", [assistant(text("hi")), user(text("x"))] as JSONValue, "first message must use the \"user\" role"),
        ("two user turns in a row", [user(text("a")), user(text("b"))] as JSONValue, "roles must alternate"),
        ("a text before the tool result", [user(text("go")), assistant(use("a")), user(text("also"), result("a"))] as JSONValue,
         "`tool_use` ids were found without `tool_result` blocks immediately after: a"),
        ("a tool use never answered", [user(text("go")), assistant(use("a"), use("b")), user(result("a"))] as JSONValue,
         "immediately after: b"),
        ("a result for an unknown id", [user(text("go")), assistant(use("a")), user(result("a"), result("zz"))] as JSONValue,
         "unexpected `tool_use_id` found in `tool_result` blocks: zz"),
        ("a result with no tool use before it", [user(result("a"))] as JSONValue, "unexpected `tool_use_id`"),
        ("a trailing assistant message", [user(text("go")), assistant(text("prefill"))] as JSONValue, "does not support assistant message prefill"),
        ("empty content", [["role": "user", "content": []]] as JSONValue, "all messages must have non-empty content"),
        ("an empty string", [["role": "user", "content": ""]] as JSONValue, "all messages must have non-empty content"),
        ("an empty text block", [user(text(""))] as JSONValue, "text content blocks must be non-empty"),
        ("a whitespace-only text block", [user(text("  \n"))] as JSONValue, "must contain non-whitespace text"),
        ("an unknown block type", [user(["type": "banana"])] as JSONValue, "does not match any of the expected tags"),
        ("a tool use without input", [user(text("go")), assistant(["type": "tool_use", "id": "a", "name": "bash"]), user(result("a"))] as JSONValue,
         "input: Input should be a valid dictionary"),
        ("a tool use with a bad id", [user(text("go")), assistant(use("a b")), user(result("a b"))] as JSONValue, "String should match pattern"),
        ("duplicate tool use ids", [user(text("go")), assistant(use("a"), use("a")), user(result("a"))] as JSONValue, "`tool_use` ids must be unique"),
        ("a tool result in an assistant message", [user(text("go")), assistant(result("a"))] as JSONValue, "can only be in `user` messages"),
        ("thinking without a signature", [user(text("go")), assistant(["type": "thinking", "thinking": "hm"]), user(text("x"))] as JSONValue,
         "signature: Field required"),
        ("a role that does not exist", [["role": "system", "content": "x"]] as JSONValue, "role: Input should be 'user' or 'assistant'"),
        ("no messages", [] as JSONValue, "at least one message is required"),
    ])
    func eachRuleRefusesItsBadShape(why: String, messages: JSONValue, expected: String) {
        let refusal = MessagesRequestRules.check(headers: Self.headers, body: Self.body(messages))
        #expect(refusal?.status == 400, "\(why)")
        #expect(refusal?.type == "invalid_request_error", "\(why)")
        #expect(refusal?.message.contains(expected) == true, "\(why): \(refusal?.message ?? "accepted")")
    }

    @Test func requestLevelRules() {
        let ok: JSONValue = [Self.user(Self.text("go"))]
        func message(_ headers: [String: String], _ body: [UInt8]) -> RequestRefusal? { MessagesRequestRules.check(headers: headers, body: body) }
        func message(_ body: [UInt8]) -> RequestRefusal? { MessagesRequestRules.check(headers: Self.headers, body: body) }
        #expect(message(["anthropic-version": "2023-06-01"], Self.body(ok)) == RequestRefusal(401, "authentication_error", "x-api-key header is required"))
        #expect(message(["x-api-key": "k"], Self.body(ok))?.message == "anthropic-version: header is required")
        #expect(message(Array("{not json".utf8))?.status == 400)
        #expect(message(Self.body(ok, extra: ["bogus": 1]))?.message == "bogus: Extra inputs are not permitted")
        #expect(message(Array(#"{"model":"m","messages":[]}"#.utf8))?.message == "max_tokens: Field required")
        #expect(message(Self.body(ok, extra: ["max_tokens": 0]))?.message.contains("greater than or equal to 1") == true)
        #expect(message(Self.body(ok, extra: ["metadata": ["user_id": "u", "x": 1]]))?.message == "metadata.x: Extra inputs are not permitted")
        #expect(message(Self.body(ok, extra: ["system": [["type": "text", "text": ""]]]))?.message.contains("non-empty") == true)
        let tool: JSONValue = ["name": "bad name", "input_schema": ["type": "object"]]
        #expect(message(Self.body(ok, extra: ["tools": [tool]]))?.message.contains("String should match pattern") == true)
        let twice: JSONValue = ["name": "t", "input_schema": ["type": "object"]]
        #expect(message(Self.body(ok, extra: ["tools": [twice, twice]]))?.message == "tools: Tool names must be unique.")
        #expect(message(Self.body(ok, extra: ["tools": [["name": "t", "input_schema": ["type": "array"]]]]))?.message.contains("Input should be 'object'") == true)
        #expect(message(Self.body(ok, extra: ["stream": "yes"]))?.message == "stream: Input should be a valid boolean")
    }

    @Test func theChatFormatRefusesUnansweredAndOrphanToolCalls() {
        func chat(_ messages: JSONValue, headers: [String: String] = ["authorization": "Bearer k"]) -> (RequestRefusal, String?)? {
            ChatRequestRules.check(headers: headers, body: Array(JSONValue.object(["model": "m", "messages": messages]).text.utf8))
        }
        let call: JSONValue = ["id": "c1", "type": "function", "function": ["name": "bash", "arguments": "{}"]]
        let calls: JSONValue = ["role": "assistant", "content": nil, "tool_calls": [call]]
        #expect(chat([["role": "user", "content": "go"], calls, ["role": "tool", "tool_call_id": "c1", "content": "ok"]]) == nil)
        #expect(chat([["role": "user", "content": "go"]], headers: [:])?.0.status == 401)
        let unanswered = chat([["role": "user", "content": "go"], calls, ["role": "user", "content": "more"]])
        #expect(unanswered?.0.message.contains("The following tool_call_ids did not have response messages: c1") == true)
        let orphan = chat([["role": "user", "content": "go"], ["role": "tool", "tool_call_id": "c9", "content": "ok"]])
        #expect(orphan?.0.message.contains("must be a response to a preceeding message with 'tool_calls'") == true)
        let noID: JSONValue = ["role": "assistant", "tool_calls": [["type": "function", "function": ["name": "bash", "arguments": "{}"]]]]
        #expect(chat([["role": "user", "content": "go"], noID])?.0.message.contains("tool_calls[0].id") == true)
        #expect(chat([] as JSONValue)?.0.message == "[] is too short - 'messages'")
    }
}
