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
        #expect(limited.allows(host: "docs.example.com.", port: 443), "a trailing dot is the same name")
        let open = NetworkPolicy(environmentConfig: ["networking": ["type": "unrestricted"]])
        // By name everything passes; where a name leads is the address rule's (AddressRuleTests).
        #expect(open.allows(host: "example.com", port: 443))
    }

    @Test func htmlIsReducedToReadableText() {
        let html = """
            <html><head><title>Drover</title><style>p { color: red }</style><script>alert("no")</script></head>
            <body><h1>Sessions &amp; leases</h1><p>A harness that dies&nbsp;is known <b>at once</b>.</p><!-- hidden --><ul><li>one</li><li>two</li></ul></body></html>
            """
        #expect(ReadableText.from(html: html) == "Drover\nSessions & leases\nA harness that dies is known at once.\none\ntwo")
    }

    /// The harnesses here open 127.0.0.2 as an operator would; 127.0.0.3 stays closed.
    static let opened = ["--allow-internal", "127.0.0.2"]

    @Test func aLimitedEnvironmentFetchesAnAllowedPageAndIsRefusedAnother() async throws {
        let page = try SocketHTTPServer(host: "127.0.0.2", port: 0)
        page.start { _, socket in
            SocketHTTPServer.respond(socket, status: 200, contentType: "text/html", body: Array("<html><body><h1>Hello from loopback</h1><script>x()</script></body></html>".utf8))
        }
        defer { page.stop() }
        let other = try SocketHTTPServer(host: "127.0.0.2", port: 0)
        other.start { _, socket in SocketHTTPServer.respond(socket, status: 200, contentType: "text/plain", body: Array("secret".utf8)) }
        defer { other.stop() }
        let allowed = "http://\(page.address)/docs"
        let script: JSONValue = ["turns": [
            HarnessEndToEndTests.tool("web_fetch", ["url": .string(allowed)]),
            HarnessEndToEndTests.tool("web_fetch", ["url": .string("http://\(other.address)/")]),
            HarnessEndToEndTests.say("Read."),
        ]]
        try await HarnessEndToEndTests().withCluster(script, args: Self.opened) { cluster in
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

    /// Issue #20: web_fetch checked only the name, so `unrestricted` read the harness host's
    /// loopback and metadata services under any spelling, and a redirect led inward. The address
    /// connected is checked now; a server that never stops sending is cut at the cap.
    @Test func noSpellingOrRedirectReachesAnAddressTheOperatorDidNotOpen() async throws {
        let closed = try SocketHTTPServer(host: "127.0.0.3", port: 0)
        closed.start { _, socket in SocketHTTPServer.respond(socket, status: 200, contentType: "text/plain", body: Array("harness-host secret".utf8)) }
        defer { closed.stop() }
        let port = closed.address.split(separator: ":").last!
        let bouncer = try SocketHTTPServer(host: "127.0.0.2", port: 0)
        bouncer.start { request, socket in
            if request.path == "/endless" {
                // Headers, then body bytes for as long as the client reads.
                _ = try? socket.send(bytes: Array("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n".utf8))
                let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 65_536)
                while (try? socket.send(bytes: chunk)) != nil {}
                return
            }
            SocketHTTPServer.respond(socket, status: 302, contentType: "text/plain", body: [], headers: [("location", "http://127.0.0.3:\(port)/")])
        }
        defer { bouncer.stop() }
        let targets = [
            "http://127.0.0.3:\(port)/", "http://2130706435:\(port)/", "http://0177.0.0.3:\(port)/", "http://127.3:\(port)/",
            "http://[::ffff:7f00:3]:\(port)/", "http://localhost.:\(port)/", "http://0:\(port)/", "http://169.254.169.254/latest/meta-data/",
            "http://\(bouncer.address)/redirect",
        ]
        let script: JSONValue = ["turns": .array(
            targets.map { HarnessEndToEndTests.tool("web_fetch", ["url": .string($0)]) }
                + [HarnessEndToEndTests.tool("web_fetch", ["url": .string("http://\(bouncer.address)/endless")]), HarnessEndToEndTests.say("Done.")])]
        try await HarnessEndToEndTests().withCluster(script, args: Self.opened) { cluster in
            let environment = try await cluster.store.createEnvironment(
                name: "open", configJSON: #"{"networking":{"type":"unrestricted"}}"#)
            let session = try await cluster.store.createSession(
                agent: cluster.agent, environment: environment, firstMessage: JSONText.userMessage("look around"))
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn", "\(events.filter { $0.type == .sessionError }.map(\.payload))")
            let results = events.filter { $0.type == .agentToolResult }.map(\.json)
            #expect(results.count == targets.count + 1)
            for (target, result) in zip(targets, results) {
                #expect(result["is_error"] == true && result["content"]?.stringValue?.hasPrefix("403 refused") == true, "\(target): \(result)")
            }
            let endless = results.last?["content"]?.stringValue ?? ""
            #expect(endless.hasSuffix("[truncated: the text is longer than 102400 bytes]") && endless.utf8.count < 110_000, "\(endless.suffix(200))")
            #expect(!events.contains { $0.payload.contains("harness-host secret") }, "nothing from the closed address")
        }
    }
}
