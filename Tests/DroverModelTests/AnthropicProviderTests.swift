import DroverCore
import DroverIO
import DroverModel
import DroverScriptedModel
import Foundation
import Synchronization
import Testing

@Suite struct SSEParserTests {
    @Test func eventsSplitAcrossChunksAndMultiLineData() {
        var parser = SSEParser()
        #expect(parser.feed(Array("event: a\nda".utf8)) == [])
        #expect(parser.feed(Array("ta: 1\r\ndata: 2\n\n: comment\n\ndata: x\n".utf8)) == [ServerSentEvent(event: "a", data: "1\n2")])
        #expect(parser.feed(Array("\n".utf8)) == [ServerSentEvent(event: "message", data: "x")])
    }
}

/// The production provider against the scripted server, over real HTTP on loopback.
@Suite struct AnthropicProviderTests {
    func serve(_ script: JSONValue) throws -> (ScriptedModelServer, AnthropicProvider) {
        let server = try ScriptedModelServer(
            script: try ModelScript.load(script), host: "127.0.0.1", port: 0, log: Log(component: "test", minimum: .error))
        server.start()
        let provider = AnthropicProvider(baseURL: "http://127.0.0.1:\(server.listener.port)", apiKey: "sk-test", maxBackoff: 0.2)
        return (server, provider)
    }

    func request(_ messages: [Message] = [Message(role: .user, content: [.text("hi")])]) -> ModelRequest {
        ModelRequest(model: "scripted", system: "be brief", messages: messages,
                     tools: [ToolDefinition(name: "bash", description: "run", inputSchema: ["type": "object"])], userID: "sesn_t")
    }

    @Test func streamsTextThinkingAndToolUse() async throws {
        let (server, provider) = try serve(["turns": [[
            "thinking": "let me see",
            "content": [["type": "text", "text": "Running a command for you now."],
                        ["type": "tool_use", "name": "bash", "input": ["command": "echo \"hi\"", "timeout": 5]]],
        ]]])
        defer { server.stop() }
        let firstToken = Mutex(false)
        let deltas = Mutex<[ModelDelta]>([])
        let response = try await provider.complete(request(), observer: ModelStreamObserver(
            onFirstToken: { firstToken.withLock { $0 = true } }, onDelta: { delta in deltas.withLock { $0.append(delta) } }))
        #expect(firstToken.withLock { $0 })
        // Each block's start, in order, then the text block's fragments, which add up to it.
        let heard = deltas.withLock { $0 }
        #expect(heard.filter { if case .blockStarted = $0 { true } else { false } }
            == [.blockStarted(index: 0, kind: .thinking), .blockStarted(index: 1, kind: .text), .blockStarted(index: 2, kind: .toolUse)])
        let fragments = heard.compactMap { if case .text(1, let text) = $0 { text } else { nil } }
        #expect(fragments.count == 3 && fragments.joined() == "Running a command for you now.")
        #expect(response.stopReason == "tool_use")
        #expect(response.usage.inputTokens > 0 && response.usage.outputTokens > 0)
        guard response.content.count == 3 else { Issue.record("\(response.content)"); return }
        #expect(response.content[0] == .thinking("let me see", signature: "scripted"))
        #expect(response.content[1] == .text("Running a command for you now."))
        guard case .toolUse(let id, let name, let input) = response.content[2] else { Issue.record("no tool use"); return }
        #expect(id.hasPrefix("toolu_0_1_") && name == "bash")
        #expect(input == ["command": "echo \"hi\"", "timeout": 5])
    }

    @Test func theTurnFollowsTheConversation() async throws {
        let (server, provider) = try serve(["turns": [
            ["content": [["type": "text", "text": "first"]]], ["content": [["type": "text", "text": "second"]]],
        ]])
        defer { server.stop() }
        let second = try await provider.complete(request([
            Message(role: .user, content: [.text("a")]), Message(role: .assistant, content: [.text("first")]),
            Message(role: .user, content: [.text("b")]),
        ])) {}
        #expect(second.content == [.text("second")])
        #expect(try await provider.complete(request()) {}.content == [.text("first")])
    }

    @Test func retriesRateLimitsAndOverloadThenSucceeds() async throws {
        let (server, provider) = try serve(["turns": [[
            "failures": [["status": 429, "retry_after": 0], ["status": 529], ["status": 500]],
            "content": [["type": "text", "text": "made it"]],
        ]]])
        defer { server.stop() }
        let response = try await provider.complete(request()) {}
        #expect(response.content == [.text("made it")])
    }

    @Test func givesUpWithACodeWhenRetriesRunOut() async throws {
        let (server, _) = try serve(["turns": [["failures": [["status": 429], ["status": 429], ["status": 429]], "content": []]]])
        defer { server.stop() }
        let stingy = AnthropicProvider(baseURL: "http://127.0.0.1:\(server.listener.port)", apiKey: "k", maxRetries: 1, maxBackoff: 0.05)
        let error = await #expect(throws: ModelError.self) { try await stingy.complete(request()) {} }
        #expect(error?.code == .rateLimited)
    }

    @Test func aMalformedStreamIsAnError() async throws {
        let (server, provider) = try serve(["turns": [["malformed": true]]])
        defer { server.stop() }
        let error = await #expect(throws: ModelError.self) { try await provider.complete(request()) {} }
        #expect(error?.code == .malformedStream)
    }

    @Test func anUnreachableServerIsANetworkError() async throws {
        let provider = AnthropicProvider(baseURL: "http://127.0.0.1:1", apiKey: "k", maxRetries: 1, maxBackoff: 0.05)
        let error = await #expect(throws: ModelError.self) { try await provider.complete(request()) {} }
        #expect(error?.code == .network)
    }

    @Test func cancellingAbortsTheCallPromptly() async throws {
        let (server, provider) = try serve(["turns": [["latency_ms": 5000, "content": [["type": "text", "text": "late"]]]]])
        defer { server.stop() }
        let call = Task { try await provider.complete(request()) {} }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        call.cancel()
        let error = await #expect(throws: ModelError.self) { try await call.value }
        #expect(error?.code == .cancelled)
        // libcurl looks at the flag about once a second while a transfer is idle: well before the
        // 5 s answer, even on a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(4))
    }
}

@Suite struct ProviderFailureTests {
    /// Overload reported mid-stream (HTTP 200, then an `error` event) is retried like a 529.
    @Test func anOverloadedErrorMidStreamIsRetried() async throws {
        let server = try ScriptedModelServer(
            script: try ModelScript.load(["turns": [["failures": [["stream_error": "overloaded_error"], ["stream_error": "rate_limit_error"]],
                                                     "content": [["type": "text", "text": "third time lucky"]]]]]),
            host: "127.0.0.1", port: 0, log: Log(component: "test", minimum: .error))
        server.start()
        defer { server.stop() }
        let provider = AnthropicProvider(baseURL: "http://127.0.0.1:\(server.listener.port)", apiKey: "sk-test", maxBackoff: 0.05)
        let response = try await provider.complete(ModelRequest(model: "m", system: "", messages: [Message(role: .user, content: [.text("hi")])], tools: [])) {}
        #expect(response.content == [.text("third time lucky")])
        #expect(server.requests.count == 3)
        // Other error types mid-stream are not retried.
        let failing = try ScriptedModelServer(
            script: try ModelScript.load(["turns": [["failures": [["stream_error": "invalid_request_error"]], "content": [["type": "text", "text": "x"]]]]]),
            host: "127.0.0.1", port: 0, log: Log(component: "test", minimum: .error))
        failing.start()
        defer { failing.stop() }
        let strict = AnthropicProvider(baseURL: "http://127.0.0.1:\(failing.listener.port)", apiKey: "sk-test", maxBackoff: 0.05)
        let error = await #expect(throws: ModelError.self) {
            try await strict.complete(ModelRequest(model: "m", system: "", messages: [Message(role: .user, content: [.text("hi")])], tools: [])) {}
        }
        #expect(error?.code == .streamError)
    }

    /// A key placed in the model URL's path, query or user-info never reaches an error message
    /// (which ends up in `session.error`).
    @Test func errorsNameTheServerButNeverTheURLsSecrets() async throws {
        let closed = try Listener(host: "127.0.0.1", port: 0)
        let port = closed.port
        closed.shutdown()
        let provider = AnthropicProvider(baseURL: "http://user:pw-SECRET@127.0.0.1:\(port)/proxy/sk-SECRET-key?token=SECRET", apiKey: "k",
                                         maxRetries: 0, maxBackoff: 0.01)
        let error = await #expect(throws: ModelError.self) {
            try await provider.complete(ModelRequest(model: "m", system: "", messages: [Message(role: .user, content: [.text("hi")])], tools: [])) {}
        }
        #expect(error?.code == .network)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true)
        #expect(error?.message.contains("SECRET") == false, "\(error?.message ?? "")")
    }
}
