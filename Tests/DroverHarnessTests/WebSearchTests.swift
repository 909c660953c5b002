import DroverCore
import DroverIO
import DroverStore
import DroverTestSupport
import Foundation
import Synchronization
import Testing
@testable import DroverHarness

/// `web_search` (issue #23, item 5): the harness asks the operator's SearXNG-style backend (a
/// stand-in on loopback here) and the model reads the top results; offered only where the
/// environment's network policy allows something and a backend is configured.
@Suite struct WebSearchTests {
    @Test func aSearchGoesToTheBackendAndItsResultsToTheModel() async throws {
        let asked = Mutex<[String]>([])
        let backend = try SocketHTTPServer(host: "127.0.0.2", port: 0)
        backend.start { request, socket in
            asked.withLock { $0.append(request.path) }
            let body: JSONValue = ["query": "drover leases", "results": [
                ["title": "Fenced leases", "url": "https://drover.example/leases", "content": "A harness whose lease was lost can never write again."],
                ["title": "The queue", "url": "https://drover.example/queue", "content": "FOR UPDATE SKIP LOCKED"],
            ]]
            SocketHTTPServer.respond(socket, status: 200, contentType: "application/json", body: Array(body.text.utf8))
        }
        defer { backend.stop() }
        let script: JSONValue = ["turns": [
            HarnessEndToEndTests.tool("web_search", ["query": "drover leases"]),
            HarnessEndToEndTests.say("Found."),
        ]]
        let args = WebFetchTests.opened + ["--search-url", "http://\(backend.address)/search?language=en"]
        try await HarnessEndToEndTests().withCluster(script, args: args) { cluster in
            let open = try await cluster.store.createEnvironment(name: "open", configJSON: #"{"networking":{"type":"unrestricted"}}"#)
            let session = try await cluster.store.createSession(agent: cluster.agent, environment: open, firstMessage: JSONText.userMessage("search"))
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let result = try #require(events.first { $0.type == .agentToolResult }?.json)
            #expect(result["is_error"] == false)
            #expect(result["content"]?.stringValue == """
                1. Fenced leases
                   https://drover.example/leases
                   A harness whose lease was lost can never write again.
                2. The queue
                   https://drover.example/queue
                   FOR UPDATE SKIP LOCKED
                """)
            #expect(asked.withLock { $0 } == ["/search?language=en&q=drover%20leases&format=json"])
            // Offered to the model with web_fetch; not where the environment has no network.
            func names(_ request: JSONValue?) -> [String] {
                guard case .array(let tools)? = request?["tool_names"] else { return [] }
                return tools.compactMap(\.stringValue)
            }
            let offered = names(cluster.model.requests.first)
            #expect(offered.contains("web_search") && offered.contains("web_fetch"), "\(offered)")
            let closed = try await cluster.store.createSession(
                agent: cluster.agent, environment: cluster.environment, firstMessage: JSONText.userMessage("search offline"))
            _ = try await cluster.waitForIdle(closed)
            let last = names(cluster.model.requests.last)
            #expect(!last.contains("web_search") && !last.contains("web_fetch"), "\(last)")
        }
    }
}
