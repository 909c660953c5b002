import DroverCore
import DroverIO
import Foundation
import Synchronization

/// A real HTTP/1.1 server on loopback that speaks the Anthropic Messages wire format (JSON, and
/// SSE when the request asks to stream) and replays a `ModelScript`. It is for tests and the
/// offline demo, and is named for what it is: nothing here is a model.
///
/// It is at least as strict as the real API: every request is checked by `MessagesRequestRules`
/// (or `ChatRequestRules` for the OpenAI format) first, and a request the real API would refuse
/// is refused the same way, recorded, and counted in `refusals`.
public final class ScriptedModelServer: Sendable {
    /// The key harnesses send to a scripted model: it demands one, as the real API does, and
    /// accepts any (it holds no secrets and checks no account).
    public static let placeholderKey = "sk-scripted-not-a-real-key"

    public let script: ModelScript
    private let server: HTTPServer
    public var listener: Listener { server.listener }
    private let log: Log

    private struct State {
        var attempts: [String: Int] = [:]
        var requests: [JSONValue] = []
        var refusals: [RequestRefusal] = []
        var nextRequestID = 0
    }
    private let state = Mutex(State())

    public init(script: ModelScript, host: String, port: UInt16, log: Log) throws {
        self.script = script
        self.log = log
        var config = HTTPServer.Config()
        // Model requests carry whole conversations; every client is on loopback.
        config.limits.body = 64 << 20
        config.maxConnectionsPerClient = config.maxConnections
        // Each request on a thread of its own, as a real server's pauses would not hold up another
        // request (and the process's tasks, a test's, cannot hold up the answers).
        let handler = Handler()
        server = try HTTPServer(host: host, port: port, config: config, name: "drover.scripted-model", log: log, blockingHandler: { request, _ in
            handler.serve.withLock { $0 }?.value(request) ?? .text(503, "stopped\n")
        })
        self.handler = handler
    }

    /// What answers requests, set by `start`; it holds the server weakly, so a stopped one is freed.
    /// `Boxed`: after a burst's requests, a bare function there had every answer walk thousands
    /// of reabstraction thunks.
    private final class Handler: Sendable {
        let serve = Mutex<Boxed<@Sendable (HTTPServerRequest) -> HTTPAnswer>?>(nil)
    }
    private let handler: Handler

    /// Serves until `stop`.
    public func start() {
        handler.serve.withLock { $0 = Boxed { [weak self] request in self?.serve(request) ?? .text(503, "stopped\n") } }
        server.start()
    }

    public func stop() { server.stop() }

    /// Every request refused as the real API would refuse it, oldest first.
    public var refusals: [RequestRefusal] { state.withLock { $0.refusals } }

    /// What was recorded of each answered or refused request (as `GET /_scripted/requests` shows).
    public var requests: [JSONValue] { state.withLock { $0.requests } }

    // MARK: - HTTP

    private func serve(_ request: HTTPServerRequest) -> HTTPAnswer {
        switch (request.method, request.path) {
        case ("POST", "/v1/messages"):
            answerMessages(headers: request.headers, body: request.body, wire: .anthropic)
        case ("POST", "/v1/chat/completions"):
            answerMessages(headers: request.headers, body: request.body, wire: .openAI)
        case ("GET", "/_scripted/requests"):
            .json(200, ["requests": .array(state.withLock { $0.requests })])
        case ("GET", "/healthz"):
            .json(200, ["ok": true])
        default:
            .json(404, errorBody("not_found_error", "no route \(request.method) \(request.path)"))
        }
    }

    /// A streamed answer whose events `produce` writes, on a thread of its own (its pauses are
    /// sleeps).
    private func stream(_ produce: @escaping @Sendable (HTTPByteStream) -> Void) -> HTTPAnswer {
        let body = HTTPByteStream()
        let thread = Thread {
            produce(body)
            body.finish()
        }
        thread.name = "drover.scripted-model.stream"
        thread.start()
        return .stream(contentType: "text/event-stream", headers: [], source: body)
    }

    private func errorBody(_ type: String, _ message: String) -> JSONValue {
        let id = state.withLock { state -> Int in
            state.nextRequestID += 1
            return state.nextRequestID
        }
        return ["type": "error", "error": ["type": .string(type), "message": .string(message)], "request_id": .string("req_scripted_\(id)")]
    }

    /// The refusal the real API would answer the request with, if it would refuse it.
    private func refusal(headers: [String: String], body: [UInt8], wire: Wire) -> HTTPAnswer? {
        let refusal: RequestRefusal
        let json: JSONValue
        switch wire {
        case .anthropic:
            guard let found = MessagesRequestRules.check(headers: headers, body: body) else { return nil }
            refusal = found
            json = errorBody(found.type, found.message)
        case .openAI:
            guard let (found, param) = ChatRequestRules.check(headers: headers, body: body) else { return nil }
            refusal = found
            json = ["error": ["message": .string(found.message), "type": .string(found.type), "param": param.map(JSONValue.string) ?? .null, "code": .null]]
        }
        state.withLock {
            $0.refusals.append(refusal)
            $0.requests.append(["status": .number(Double(refusal.status)), "error": .string(refusal.message)])
        }
        log.warning("refused", ("status", .number(Double(refusal.status))), ("error", .string(refusal.message)))
        return .json(refusal.status, json)
    }

    // MARK: - Messages

    /// The two wire formats it speaks: Anthropic Messages and OpenAI chat completions.
    enum Wire {
        case anthropic
        case openAI
    }

    private func answerMessages(headers: [String: String], body: [UInt8], wire: Wire) -> HTTPAnswer {
        let receivedAt = Date().timeIntervalSince1970
        if let refused = refusal(headers: headers, body: body, wire: wire) { return refused }
        guard let request = try? JSONValue.parse(body), case .array(let messages)? = request["messages"] else {
            return .json(400, errorBody("invalid_request_error", "messages: an array is required"))
        }
        let turnIndex = messages.filter { $0["role"]?.stringValue == "assistant" }.count
        let conversation = (wire == .anthropic ? request["metadata"]?["user_id"] : request["user"])?.stringValue ?? "anonymous"
        let firstUser = messages.first { $0["role"]?.stringValue == "user" }
        let firstText: String
        switch firstUser?["content"] {
        case .string(let text)?: firstText = text
        case .array(let blocks)?: firstText = blocks.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
        default: firstText = ""
        }
        let turn = script.turn(at: turnIndex, firstMessage: firstText)
        let attempt = state.withLock { state -> Int in
            let key = "\(conversation)#\(turnIndex)"
            defer { state.attempts[key, default: 0] += 1 }
            return state.attempts[key, default: 0]
        }
        let record: JSONValue = [
            "turn": .number(Double(turnIndex)), "conversation": .string(conversation), "attempt": .number(Double(attempt)),
            "received_at": .number(receivedAt), "has_api_key": .bool(headers["x-api-key"] != nil || headers["authorization"] != nil),
            "stream": .bool(request["stream"]?.boolValue == true), "tools": .number(Double(request["tools"].map { if case .array(let t) = $0 { t.count } else { 0 } } ?? 0)),
            "status": 200, "tool_results": .array(Self.lastToolResults(messages, wire: wire)), "system": request["system"] ?? .null,
            // The tools offered, by name (Messages: `name`; chat completions: `function.name`).
            "tool_names": .array(request["tools"].map { tools -> [JSONValue] in
                guard case .array(let list) = tools else { return [] }
                return list.compactMap { ($0["name"]?.stringValue ?? $0["function"]?["name"]?.stringValue).map(JSONValue.string) }
            } ?? []),
        ]
        state.withLock {
            $0.requests.append(record)
            if $0.requests.count > 10_000 { $0.requests.removeFirst() }
        }
        log.info("request", ("turn", .number(Double(turnIndex))), ("conversation", .string(conversation)),
                 ("attempt", .number(Double(attempt))), ("received_at", .number(receivedAt)))
        if turn.latencyMs > 0 { Thread.sleep(forTimeInterval: Double(turn.latencyMs) / 1000) }
        if attempt < turn.failures.count, let type = turn.failures[attempt].streamError {
            // HTTP 200, a stream that starts, then an `error` event: how the real API reports
            // overload once a response has begun.
            let error: JSONValue = ["type": "error", "error": ["type": .string(type), "message": .string("scripted stream error \(attempt + 1)")]]
            return stream { $0.write(Array("event: message_start\ndata: \(JSONValue.object(["type": "message_start", "message": ["id": "msg_failing", "type": "message", "role": "assistant", "content": [], "model": "scripted", "stop_reason": nil, "usage": ["input_tokens": 1, "output_tokens": 0]]]).text)\n\nevent: error\ndata: \(error.text)\n\n".utf8)) }
        }
        if attempt < turn.failures.count {
            let failure = turn.failures[attempt]
            let type = failure.status == 429 ? "rate_limit_error" : failure.status == 529 ? "overloaded_error" : "api_error"
            let error = wire == .anthropic
                ? errorBody(type, "scripted failure \(attempt + 1)")
                : ["error": ["type": .string(type), "message": .string("scripted failure \(attempt + 1)")]]
            return .json(failure.status, error, headers: failure.retryAfter.map { [("retry-after", String(Int($0.rounded(.up))))] } ?? [])
        }
        let blocks = turn.content.enumerated().map { index, block -> JSONValue in
            guard block["type"]?.stringValue == "tool_use", case .object(var members) = block else { return block }
            if members["id"] == nil && !(wire == .openAI && turn.omitIDs) {
                members["id"] = .string("toolu_\(turnIndex)_\(index)_\(Self.shortHash(conversation))")
            }
            // "{{tool_use_id}}" in an input string becomes the call's id (so a side effect can name it).
            members["input"] = Self.substitute(members["input"] ?? [:], id: members["id"]?.stringValue ?? "")
            return .object(members)
        }
        let messageID = "msg_scripted_\(turnIndex)_\(Self.shortHash(conversation))"
        if wire == .openAI {
            return answerChat(turn: turn, blocks: blocks, id: messageID, stream: request["stream"]?.boolValue == true)
        }
        guard request["stream"]?.boolValue == true else {
            return .json(200, [
                "id": .string(messageID), "type": "message", "role": "assistant", "model": request["model"] ?? "scripted",
                "content": .array(blocks), "stop_reason": .string(turn.stopReason),
                "usage": ["input_tokens": .number(Double(body.count / 4)), "output_tokens": .number(Double(turn.content.count * 10))],
            ])
        }
        let (model, inputTokens) = (request["model"] ?? "scripted", body.count / 4)
        return stream { body in Self.messagesStream(body, turn: turn, blocks: blocks, messageID: messageID, model: model, inputTokens: inputTokens) }
    }

    /// A Messages response's events, as the real API streams them.
    private static func messagesStream(_ body: HTTPByteStream, turn: ModelScript.Turn, blocks: [JSONValue], messageID: String, model: JSONValue,
                                       inputTokens: Int) {
        func send(_ type: String, _ data: JSONValue) -> Bool {
            body.write(Array("event: \(type)\ndata: \(data.text)\n\n".utf8))
        }
        _ = send("message_start", ["type": "message_start", "message": [
            "id": .string(messageID), "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": nil, "usage": ["input_tokens": .number(Double(inputTokens)), "output_tokens": 0],
        ]])
        if turn.malformed {
            body.write(Array("event: content_block_start\ndata: {this is not json\n\n".utf8))
            return
        }
        _ = send("ping", ["type": "ping"])
        var index = 0
        var outputTokens = 0
        if let thinking = turn.thinking {
            _ = send("content_block_start", ["type": "content_block_start", "index": .number(Double(index)), "content_block": ["type": "thinking", "thinking": ""]])
            _ = send("content_block_delta", ["type": "content_block_delta", "index": .number(Double(index)), "delta": ["type": "thinking_delta", "thinking": .string(thinking)]])
            _ = send("content_block_delta", ["type": "content_block_delta", "index": .number(Double(index)), "delta": ["type": "signature_delta", "signature": "scripted"]])
            _ = send("content_block_stop", ["type": "content_block_stop", "index": .number(Double(index))])
            index += 1
        }
        for block in blocks {
            let at = JSONValue.number(Double(index))
            switch block["type"]?.stringValue {
            case "tool_use":
                _ = send("content_block_start", ["type": "content_block_start", "index": at, "content_block": [
                    "type": "tool_use", "id": block["id"] ?? "", "name": block["name"] ?? "", "input": [:],
                ]])
                let json = (block["input"] ?? [:]).text
                let middle = json.index(json.startIndex, offsetBy: json.count / 2)
                for part in [String(json[..<middle]), String(json[middle...])] {
                    _ = send("content_block_delta", ["type": "content_block_delta", "index": at, "delta": ["type": "input_json_delta", "partial_json": .string(part)]])
                }
                outputTokens += json.count / 4 + 1
            default:
                let text = block["text"]?.stringValue ?? ""
                _ = send("content_block_start", ["type": "content_block_start", "index": at, "content_block": ["type": "text", "text": ""]])
                for (n, chunk) in Self.chunks(text, count: 3).enumerated() {
                    if n > 0 && turn.chunkDelayMs > 0 { usleep(useconds_t(turn.chunkDelayMs * 1000)) }
                    _ = send("content_block_delta", ["type": "content_block_delta", "index": at, "delta": ["type": "text_delta", "text": .string(chunk)]])
                }
                outputTokens += text.count / 4 + 1
            }
            _ = send("content_block_stop", ["type": "content_block_stop", "index": at])
            index += 1
        }
        _ = send("message_delta", ["type": "message_delta", "delta": ["stop_reason": .string(turn.stopReason), "stop_sequence": nil],
                                   "usage": ["output_tokens": .number(Double(outputTokens))]])
        _ = send("message_stop", ["type": "message_stop"])
    }

    /// The same turn as an OpenAI chat completion: JSON, or `chat.completion.chunk` events ending
    /// in `data: [DONE]`.
    private func answerChat(turn: ModelScript.Turn, blocks: [JSONValue], id: String, stream streamed: Bool) -> HTTPAnswer {
        let text = blocks.filter { $0["type"]?.stringValue != "tool_use" }.compactMap { $0["text"]?.stringValue }.joined()
        let calls = blocks.filter { $0["type"]?.stringValue == "tool_use" }
        let finish = calls.isEmpty ? "stop" : "tool_calls"
        guard streamed else {
            var message: [String: JSONValue] = ["role": "assistant", "content": text.isEmpty ? .null : .string(text)]
            if !calls.isEmpty {
                message["tool_calls"] = .array(calls.map {
                    ["id": $0["id"] ?? "", "type": "function", "function": ["name": $0["name"] ?? "", "arguments": .string(($0["input"] ?? [:]).text)]]
                })
            }
            return .json(200, ["id": .string(id), "object": "chat.completion",
                               "choices": [["index": 0, "message": .object(message), "finish_reason": .string(finish)]]])
        }
        return stream { body in
        func send(_ delta: JSONValue, finish: String? = nil) {
            let chunk: JSONValue = ["id": .string(id), "object": "chat.completion.chunk",
                                    "choices": [["index": 0, "delta": delta, "finish_reason": finish.map(JSONValue.string) ?? .null]]]
            body.write(Array("data: \(chunk.text)\n\n".utf8))
        }
        if turn.malformed {
            body.write(Array("data: {this is not json\n\n".utf8))
            return
        }
        send(["role": "assistant", "content": ""])
        for part in Self.chunks(text, count: 3) where !part.isEmpty { send(["content": .string(part)]) }
        for (index, call) in calls.enumerated() {
            let arguments = (call["input"] ?? [:]).text
            let middle = arguments.index(arguments.startIndex, offsetBy: arguments.count / 2)
            // Some OpenAI-compatible servers send no id at all (`omit_ids` in the script).
            var first: [String: JSONValue] = ["index": .number(Double(index)), "type": "function",
                                              "function": ["name": call["name"] ?? "", "arguments": .string(String(arguments[..<middle]))]]
            if let callID = call["id"] { first["id"] = callID }
            send(["tool_calls": [.object(first)]])
            send(["tool_calls": [["index": .number(Double(index)), "function": ["arguments": .string(String(arguments[middle...]))]]]])
        }
        send([:], finish: finish)
        let usage: JSONValue = ["id": .string(id), "object": "chat.completion.chunk", "choices": [],
                                "usage": ["prompt_tokens": 10, "completion_tokens": .number(Double(text.count / 4 + calls.count * 10))]]
        body.write(Array("data: \(usage.text)\n\ndata: [DONE]\n\n".utf8))
        }
    }

    /// The tool results the request's last message carries, as text (what the model would read).
    static func lastToolResults(_ messages: [JSONValue], wire: Wire) -> [JSONValue] {
        switch wire {
        case .anthropic:
            guard case .array(let blocks)? = messages.last?["content"] else { return [] }
            return blocks.filter { $0["type"]?.stringValue == "tool_result" }.map { $0["content"] ?? "" }
        case .openAI:
            return messages.reversed().prefix { $0["role"]?.stringValue == "tool" }.reversed().map { $0["content"] ?? "" }
        }
    }

    private static func chunks(_ text: String, count: Int) -> [String] {
        guard text.count > count else { return [text] }
        let size = (text.count + count - 1) / count
        var parts: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            parts.append(String(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        return parts
    }

    private static func substitute(_ value: JSONValue, id: String) -> JSONValue {
        switch value {
        case .string(let text): return .string(text.replacingOccurrences(of: "{{tool_use_id}}", with: id))
        case .array(let values): return .array(values.map { substitute($0, id: id) })
        case .object(let members): return .object(members.mapValues { substitute($0, id: id) })
        default: return value
        }
    }

    private static func shortHash(_ text: String) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return String(hash, radix: 16)
    }
}
