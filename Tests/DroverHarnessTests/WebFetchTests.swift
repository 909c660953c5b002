import DroverCore
import DroverIO
import DroverStore
import DroverTestSupport
import Foundation
import Testing
@testable import DroverHarness

/// `web_fetch`: the harness fetches (the sandbox has no network) under the environment's policy.
@Suite struct WebFetchTests {
    @Test func policiesFollowManagedAgentsNetworking() {
        let none = NetworkPolicy(environmentConfig: ["resources": [:]])
        #expect(none.kind == .none && !none.allows(host: "example.com", port: 443))
        let limited = NetworkPolicy(environmentConfig: [
            "networking": ["type": "limited", "allowed_hosts": ["docs.example.com", "*.internal.test", "127.0.0.1:8000"], "allow_package_managers": true],
        ])
        #expect(limited.allows(host: "docs.example.com", port: 443) && limited.allows(host: "DOCS.example.com", port: 80))
        #expect(limited.allows(host: "a.internal.test", port: 443) && !limited.allows(host: "internal.test.evil.com", port: 443))
        #expect(limited.allows(host: "127.0.0.1", port: 8000) && !limited.allows(host: "127.0.0.1", port: 8001), "a port pattern is exact")
        #expect(limited.allows(host: "pypi.org", port: 443), "package managers")
        #expect(!limited.allows(host: "other.example.com", port: 443))
        let open = NetworkPolicy(environmentConfig: ["networking": ["type": "unrestricted"]])
        #expect(open.allows(host: "example.com", port: 443))
        for host in ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.1", "172.20.0.1", "169.254.169.254", "[::1]", "0.0.0.0"] {
            #expect(!open.allows(host: host, port: 80), "\(host) is private unless named")
        }
    }

    @Test func htmlIsReducedToReadableText() {
        let html = """
            <html><head><title>Drover</title><style>p { color: red }</style><script>alert("no")</script></head>
            <body><h1>Sessions &amp; leases</h1><p>A harness that dies&nbsp;is known <b>at once</b>.</p><!-- hidden --><ul><li>one</li><li>two</li></ul></body></html>
            """
        #expect(ReadableText.from(html: html) == "Drover\nSessions & leases\nA harness that dies is known at once.\none\ntwo")
    }

    @Test func aLimitedEnvironmentFetchesAnAllowedPageAndIsRefusedAnother() async throws {
        let page = try HTTPServer(host: "127.0.0.1", port: 0)
        page.start { _, socket in
            HTTPServer.respond(socket, status: 200, contentType: "text/html", body: Array("<html><body><h1>Hello from loopback</h1><script>x()</script></body></html>".utf8))
        }
        defer { page.stop() }
        let other = try HTTPServer(host: "127.0.0.1", port: 0)
        other.start { _, socket in HTTPServer.respond(socket, status: 200, contentType: "text/plain", body: Array("secret".utf8)) }
        defer { other.stop() }
        let allowed = "http://\(page.address)/docs"
        let script: JSONValue = ["turns": [
            HarnessEndToEndTests.tool("web_fetch", ["url": .string(allowed)]),
            HarnessEndToEndTests.tool("web_fetch", ["url": .string("http://\(other.address)/")]),
            HarnessEndToEndTests.say("Read."),
        ]]
        try await HarnessEndToEndTests().withCluster(script) { cluster in
            let environment = try await cluster.store.createEnvironment(
                name: "limited", configJSON: JSONValue.object(["networking": ["type": "limited", "allowed_hosts": [.string(page.address)]]]).text)
            let session = try await cluster.store.createSession(
                agent: cluster.agent, environment: environment, firstMessage: JSONText.userMessage("read the docs"))
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn")
            let results = events.filter { $0.type == .agentToolResult }.map(\.json)
            #expect(results.count == 2)
            #expect(results.first?["content"] == "Hello from loopback" && results.first?["is_error"] == false, "\(results)")
            #expect(results.last?["is_error"] == true && results.last?["content"]?.stringValue?.hasPrefix("403 refused") == true, "\(results)")
            #expect(!events.contains { $0.payload.contains("secret") }, "nothing from the refused host")
            #expect(cluster.model.refusals.isEmpty, "\(cluster.model.refusals.map(\.message))")
        }
    }
}
