import DroverCore
import Foundation
import Synchronization

/// An OpenAI-compatible chat-completions API (OpenAI, vLLM, llama.cpp, Ollama, …) with streaming
/// and tool calls, mapped onto the same `ModelRequest` / `ModelResponse` as the Messages API.
/// Retries as `RetryingStream` says; the key travels only in the `authorization` header.
public struct OpenAIProvider: ModelProvider {
    let transport: RetryingStream
    let apiKey: String

    public init(baseURL: String = "https://api.openai.com", apiKey: String, maxRetries: Int = 6, maxBackoff: Double = 60) {
        transport = RetryingStream(baseURL: baseURL, maxRetries: maxRetries, maxBackoff: maxBackoff)
        self.apiKey = apiKey
    }

    public func complete(_ request: ModelRequest, observer: ModelStreamObserver) async throws -> ModelResponse {
        var headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
        if !apiKey.isEmpty { headers.append(("authorization", "Bearer \(apiKey)")) }
        return try await transport.send(
            HTTPRequest(url: transport.baseURL + "/v1/chat/completions", headers: headers, body: Array(Self.body(request).text.utf8)),
            as: ChunkState.self, observer: observer)
    }

    /// Content blocks become chat messages: tool results are `tool` messages, tool uses are
    /// `tool_calls` on the assistant message; thinking blocks have no place here and are dropped.
    public static func body(_ request: ModelRequest) -> JSONValue {
        var messages: [JSONValue] = []
        if !request.system.isEmpty { messages.append(["role": "system", "content": .string(request.system)]) }
        for message in request.messages {
            switch message.role {
            case .user:
                var texts: [String] = []
                for block in message.content {
                    switch block {
                    case .toolResult(let id, let content, _):
                        messages.append(["role": "tool", "tool_call_id": .string(id), "content": .string(content)])
                    case .text(let text): texts.append(text)
                    default: continue
                    }
                }
                if !texts.isEmpty { messages.append(["role": "user", "content": .string(texts.joined(separator: "\n"))]) }
            case .assistant:
                var entry: [String: JSONValue] = ["role": "assistant"]
                let text = message.content.compactMap { if case .text(let t) = $0 { t } else { nil } }.joined()
                entry["content"] = text.isEmpty ? .null : .string(text)
                let calls: [JSONValue] = message.content.compactMap { block in
                    guard case .toolUse(let id, let name, let input) = block else { return nil }
                    return ["id": .string(id), "type": "function", "function": ["name": .string(name), "arguments": .string(input.text)]]
                }
                if !calls.isEmpty { entry["tool_calls"] = .array(calls) }
                messages.append(.object(entry))
            }
        }
        var body: [String: JSONValue] = [
            "model": .string(request.model), "max_tokens": .number(Double(request.maxTokens)), "stream": true,
            "stream_options": ["include_usage": true], "messages": .array(messages),
        ]
        if !request.tools.isEmpty {
            body["tools"] = .array(request.tools.map {
                ["type": "function", "function": ["name": .string($0.name), "description": .string($0.description), "parameters": $0.inputSchema]]
            })
        }
        if let user = request.userID { body["user"] = .string(user) }
        return .object(body)
    }
}

/// Folds `chat.completion.chunk` events into a response.
private final class ChunkState: ResponseStream {
    private struct State {
        var parser = SSEParser()
        var raw: [UInt8] = []
        var id = ""
        var text = ""
        var calls: [Int: (id: String, name: String, arguments: String)] = [:]
        var finish: String?
        var usage = ModelUsage()
        var done = false
        var failure: ModelError?
        var sawContent = false
    }

    private let state = Mutex(State())
    private let observer: ModelStreamObserver

    required init(observer: ModelStreamObserver) { self.observer = observer }

    var raw: [UInt8] { state.withLock { $0.raw } }

    func feed(_ bytes: [UInt8]) {
        let (first, deltas) = state.withLock { state -> (Bool, [ModelDelta]) in
            if state.raw.count < 65_536 { state.raw += bytes.prefix(65_536 - state.raw.count) }
            let before = state.sawContent
            let textBefore = state.text.utf8.count
            for event in state.parser.feed(bytes) where state.failure == nil && !state.done { Self.apply(event, to: &state) }
            // The text is the response's first block (index 0); tool calls follow it.
            var deltas: [ModelDelta] = []
            if state.text.utf8.count > textBefore {
                if textBefore == 0 { deltas.append(.blockStarted(index: 0, kind: .text)) }
                deltas.append(.text(index: 0, String(decoding: state.text.utf8.dropFirst(textBefore), as: UTF8.self)))
            }
            return (!before && state.sawContent, deltas)
        }
        if first { observer.onFirstToken() }
        if let onDelta = observer.onDelta { deltas.forEach(onDelta) }
    }

    private static func apply(_ event: ServerSentEvent, to state: inout State) {
        if event.data == "[DONE]" {
            state.done = true
            return
        }
        guard let chunk = try? JSONValue.parse(event.data), case .object = chunk else {
            state.failure = ModelError(.malformedStream, "a chunk is not a JSON object: \(event.data.prefix(200))")
            return
        }
        if let error = chunk["error"] {
            state.failure = ModelError(.streamError, error["message"]?.stringValue ?? error.text)
            return
        }
        if let id = chunk["id"]?.stringValue { state.id = id }
        if let usage = chunk["usage"], usage != .null {
            state.usage = ModelUsage(inputTokens: usage["prompt_tokens"]?.intValue ?? 0, outputTokens: usage["completion_tokens"]?.intValue ?? 0)
        }
        guard let choice = chunk["choices"]?[0] else { return }
        let delta = choice["delta"] ?? [:]
        if let text = delta["content"]?.stringValue, !text.isEmpty {
            state.text += text
            state.sawContent = true
        }
        if case .array(let calls)? = delta["tool_calls"] {
            state.sawContent = true
            for call in calls {
                let index = call["index"]?.intValue ?? 0
                var entry = state.calls[index] ?? ("", "", "")
                if let id = call["id"]?.stringValue { entry.id = id }
                if let name = call["function"]?["name"]?.stringValue { entry.name += name }
                if let arguments = call["function"]?["arguments"]?.stringValue { entry.arguments += arguments }
                state.calls[index] = entry
            }
        }
        if let finish = choice["finish_reason"]?.stringValue { state.finish = finish }
    }

    func finish() throws -> ModelResponse {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard state.done || state.finish != nil else { throw ModelError(.malformedStream, "the stream ended without a finish_reason") }
            var content: [ContentBlock] = []
            if !state.text.isEmpty { content.append(.text(state.text)) }
            for (_, call) in state.calls.sorted(by: { $0.key < $1.key }) {
                // Some compatible servers send no id: each call still needs its own, or call-id
                // de-duplication would hand a later call an earlier call's cached result.
                let id = call.id.isEmpty ? "call_drover_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() : call.id
                content.append(.toolUse(id: id, name: call.name, input: (try? JSONValue.parse(call.arguments.isEmpty ? "{}" : call.arguments)) ?? [:]))
            }
            let stop: String
            switch state.finish {
            case "tool_calls": stop = "tool_use"
            case "length": stop = "max_tokens"
            default: stop = state.calls.isEmpty ? "end_turn" : "tool_use"
            }
            return ModelResponse(id: state.id, content: content, stopReason: stop, usage: state.usage)
        }
    }
}
