import DroverCore
import Foundation
import Synchronization

/// The Anthropic Messages API with streaming (SSE) and tools.
///
/// Retries as `RetryingStream` says (429, 529, 5xx, unreachable; `retry-after` honoured). The API key goes only into the `x-api-key` header: it is never
/// part of a request body, an event or a log line.
public struct AnthropicProvider: ModelProvider {
    let transport: RetryingStream
    let apiKey: String

    /// `maxBackoff`: the longest wait between attempts, whatever `retry-after` says.
    public init(baseURL: String = "https://api.anthropic.com", apiKey: String, maxRetries: Int = 6, maxBackoff: Double = 60) {
        transport = RetryingStream(baseURL: baseURL, maxRetries: maxRetries, maxBackoff: maxBackoff)
        self.apiKey = apiKey
    }

    public func complete(_ request: ModelRequest, observer: ModelStreamObserver) async throws -> ModelResponse {
        try await transport.send(
            HTTPRequest(
                url: transport.baseURL + "/v1/messages",
                headers: [("content-type", "application/json"), ("accept", "text/event-stream"),
                          ("anthropic-version", "2023-06-01"), ("x-api-key", apiKey)],
                body: Array(Self.body(request).text.utf8)),
            as: StreamState.self, observer: observer)
    }

    public static func body(_ request: ModelRequest) -> JSONValue {
        var body: [String: JSONValue] = [
            "model": .string(request.model), "max_tokens": .number(Double(request.maxTokens)), "stream": true,
            "messages": .array(request.messages.map { ["role": .string($0.role.rawValue), "content": .array($0.content.map(\.json))] }),
        ]
        if !request.system.isEmpty { body["system"] = .string(request.system) }
        if !request.tools.isEmpty { body["tools"] = .array(request.tools.map(\.json)) }
        if let userID = request.userID { body["metadata"] = ["user_id": .string(userID)] }
        return .object(body)
    }
}

/// Folds the event stream into a response. Fed on the transfer thread, read after it ends.
private final class StreamState: ResponseStream {
    private struct State {
        var parser = SSEParser()
        var raw: [UInt8] = []
        var id = ""
        var blocks: [Int: Block] = [:]
        var stopReason: String?
        var usage = ModelUsage()
        var stopped = false
        var failure: ModelError?
        var sawContent = false
    }

    private enum Block {
        case text(String)
        case thinking(String, String?)
        case toolUse(id: String, name: String, json: String)
    }

    private let state = Mutex(State())
    private let observer: ModelStreamObserver

    required init(observer: ModelStreamObserver) { self.observer = observer }

    var raw: [UInt8] { state.withLock { $0.raw } }

    func feed(_ bytes: [UInt8]) {
        let watching = observer.onDelta != nil
        let (first, deltas) = state.withLock { state -> (Bool, [ModelDelta]) in
            if state.raw.count < 65_536 { state.raw += bytes.prefix(65_536 - state.raw.count) }
            let before = state.sawContent
            var deltas: [ModelDelta]? = watching ? [] : nil
            for event in state.parser.feed(bytes) where state.failure == nil {
                Self.apply(event, to: &state, deltas: &deltas)
            }
            return (!before && state.sawContent, deltas ?? [])
        }
        if first { observer.onFirstToken() }
        if let onDelta = observer.onDelta { deltas.forEach(onDelta) }
    }

    func finish() throws -> ModelResponse {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard state.stopped else {
                throw ModelError(.malformedStream, "the stream ended without message_stop")
            }
            let content = state.blocks.sorted { $0.key < $1.key }.map { _, block -> ContentBlock in
                switch block {
                case .text(let text): return .text(text)
                case .thinking(let text, let signature): return .thinking(text, signature: signature)
                case .toolUse(let id, let name, let json):
                    return .toolUse(id: id, name: name, input: (try? JSONValue.parse(json.isEmpty ? "{}" : json)) ?? [:])
                }
            }
            return ModelResponse(id: state.id, content: content, stopReason: state.stopReason ?? "end_turn", usage: state.usage)
        }
    }

    private static func apply(_ event: ServerSentEvent, to state: inout State, deltas: inout [ModelDelta]?) {
        guard let data = try? JSONValue.parse(event.data), case .object = data else {
            state.failure = ModelError(.malformedStream, "an event's data is not a JSON object: \(event.data.prefix(200))")
            return
        }
        switch data["type"]?.stringValue ?? event.event {
        case "message_start":
            state.id = data["message"]?["id"]?.stringValue ?? ""
            let usage = data["message"]?["usage"]
            state.usage.inputTokens = usage?["input_tokens"]?.intValue ?? 0
            state.usage.cacheCreationInputTokens = usage?["cache_creation_input_tokens"]?.intValue ?? 0
            state.usage.cacheReadInputTokens = usage?["cache_read_input_tokens"]?.intValue ?? 0
        case "content_block_start":
            guard let index = data["index"]?.intValue, let block = data["content_block"] else { return malformed(&state, data) }
            switch block["type"]?.stringValue {
            case "thinking":
                state.blocks[index] = .thinking(block["thinking"]?.stringValue ?? "", nil)
                deltas?.append(.blockStarted(index: index, kind: .thinking))
            case "tool_use":
                state.blocks[index] = .toolUse(id: block["id"]?.stringValue ?? "", name: block["name"]?.stringValue ?? "", json: "")
                deltas?.append(.blockStarted(index: index, kind: .toolUse))
            default:
                let text = block["type"]?.stringValue == "text" ? block["text"]?.stringValue ?? "" : ""
                state.blocks[index] = .text(text)
                deltas?.append(.blockStarted(index: index, kind: .text))
                if !text.isEmpty { deltas?.append(.text(index: index, text)) }
            }
        case "content_block_delta":
            guard let index = data["index"]?.intValue, let delta = data["delta"], let block = state.blocks[index] else {
                return malformed(&state, data)
            }
            state.sawContent = true
            switch (block, delta["type"]?.stringValue) {
            case (.text(let text), "text_delta"):
                let fragment = delta["text"]?.stringValue ?? ""
                state.blocks[index] = .text(text + fragment)
                if !fragment.isEmpty { deltas?.append(.text(index: index, fragment)) }
            case (.thinking(let text, let signature), "thinking_delta"):
                state.blocks[index] = .thinking(text + (delta["thinking"]?.stringValue ?? ""), signature)
            case (.thinking(let text, _), "signature_delta"): state.blocks[index] = .thinking(text, delta["signature"]?.stringValue)
            case (.toolUse(let id, let name, let json), "input_json_delta"):
                state.blocks[index] = .toolUse(id: id, name: name, json: json + (delta["partial_json"]?.stringValue ?? ""))
            default: malformed(&state, data)
            }
        case "content_block_stop":
            break
        case "message_delta":
            if let reason = data["delta"]?["stop_reason"]?.stringValue { state.stopReason = reason }
            if let output = data["usage"]?["output_tokens"]?.intValue { state.usage.outputTokens = output }
        case "message_stop":
            state.stopped = true
        case "ping":
            break
        case "error":
            // Overload and rate limits can arrive mid-stream under HTTP 200: coded as the same
            // failures as a 529 or 429, so they are retried the same way.
            let type = data["error"]?["type"]?.stringValue ?? "error"
            let message = "\(type): \(data["error"]?["message"]?.stringValue ?? "")"
            switch type {
            case "overloaded_error", "api_error": state.failure = ModelError(.overloaded, message)
            case "rate_limit_error": state.failure = ModelError(.rateLimited, message)
            default: state.failure = ModelError(.streamError, message)
            }
        default:
            break
        }
    }

    private static func malformed(_ state: inout State, _ data: JSONValue) {
        state.failure = ModelError(.malformedStream, "unexpected event \(data.text.prefix(200))")
    }
}
