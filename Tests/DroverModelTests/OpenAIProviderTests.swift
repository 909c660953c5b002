import DroverCore
import DroverModel
import DroverScriptedModel
import Foundation
import Testing

/// The OpenAI-compatible provider against the scripted server's chat-completions route.
@Suite struct OpenAIProviderTests {
    func serve(_ script: JSONValue) throws -> (ScriptedModelServer, OpenAIProvider) {
        let server = try ScriptedModelServer(
            script: try ModelScript.load(script), host: "127.0.0.1", port: 0, log: Log(component: "test", minimum: .error))
        server.start()
        return (server, OpenAIProvider(baseURL: "http://127.0.0.1:\(server.listener.port)", apiKey: "sk-openai", maxBackoff: 0.1))
    }

    @Test func streamsTextAndToolCallsAndMapsTheConversation() async throws {
        let (server, provider) = try serve(["turns": [
            ["content": [["type": "text", "text": "Calling two tools."],
                         ["type": "tool_use", "name": "bash", "input": ["command": "ls"]],
                         ["type": "tool_use", "name": "read", "input": ["path": "a.txt"]]]],
            ["content": [["type": "text", "text": "Both done."]]],
        ]])
        defer { server.stop() }
        let first = try await provider.complete(ModelRequest(
            model: "local", system: "sys", messages: [Message(role: .user, content: [.text("go")])],
            tools: [ToolDefinition(name: "bash", description: "", inputSchema: ["type": "object"])], userID: "sesn_o")) {}
        #expect(first.stopReason == "tool_use")
        #expect(first.content.count == 3)
        #expect(first.content[0] == .text("Calling two tools."))
        guard case .toolUse(let id, "bash", let input) = first.content[1], case .toolUse(let readID, "read", _) = first.content[2] else {
            Issue.record("\(first.content)")
            return
        }
        #expect(input == ["command": "ls"])
        // The follow-up carries tool_calls and tool messages; the server counts one assistant turn.
        let second = try await provider.complete(ModelRequest(model: "local", system: "", messages: [
            Message(role: .user, content: [.text("go")]),
            Message(role: .assistant, content: first.content),
            Message(role: .user, content: [.toolResult(toolUseID: id, content: "a.txt", isError: false),
                                           .toolResult(toolUseID: readID, content: "contents", isError: false)]),
        ], tools: [], userID: "sesn_o")) {}
        #expect(second.content == [.text("Both done.")])
        #expect(second.stopReason == "end_turn")
    }

    @Test func retriesAndMalformedStreams() async throws {
        let (server, provider) = try serve([
            "turns": [["failures": [["status": 429, "retry_after": 0], ["status": 503]], "content": [["type": "text", "text": "ok"]]]],
            "variants": [["match": "BROKEN", "turns": [["malformed": true]]]],
        ])
        defer { server.stop() }
        let ok = try await provider.complete(ModelRequest(model: "m", system: "", messages: [Message(role: .user, content: [.text("hi")])], tools: [])) {}
        #expect(ok.content == [.text("ok")])
        let error = await #expect(throws: ModelError.self) {
            try await provider.complete(ModelRequest(model: "m", system: "", messages: [Message(role: .user, content: [.text("BROKEN")])], tools: [])) {}
        }
        #expect(error?.code == .malformedStream)
    }
}
