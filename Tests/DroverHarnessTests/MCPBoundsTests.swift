import DroverCore
import DroverIO
import DroverTestSupport
import Foundation
import Testing

/// Issue #20: an agent's MCP servers are chosen by the tenant, so the harness treats them as it
/// treats any tenant-chosen host: the environment's policy and the operator's address rule first,
/// then a response read to a size cap within a total deadline, and errors of its own words (never
/// a server's body) in `session.error`. An endless response used to run the harness out of
/// memory, and the next harness to take the session over the same way.
@Suite struct MCPBoundsTests {
    @Test func endlessLeakyAndClosedServersCostTheSessionAnErrorAndNothingMore() async throws {
        let server = try SocketHTTPServer(host: "127.0.0.2", port: 0)
        server.start { request, socket in
            if request.path == "/endless" {
                _ = try? socket.send(bytes: Array("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n[".utf8))
                let chunk = Array(String(repeating: "1,", count: 32_768).utf8)
                while (try? socket.send(bytes: chunk)) != nil {}
                return
            }
            SocketHTTPServer.respond(socket, status: 500, contentType: "text/plain", body: Array("LEAKED-BODY internal stack trace".utf8))
        }
        defer { server.stop() }
        let closed = try SocketHTTPServer(host: "127.0.0.3", port: 0)
        closed.start { _, socket in SocketHTTPServer.respond(socket, status: 200, contentType: "application/json", body: Array("{}".utf8)) }
        defer { closed.stop() }
        let servers: [(String, String)] = [
            ("endless", "http://\(server.address)/endless"), ("leaky", "http://\(server.address)/leaky"),
            ("closed", "http://\(closed.address)/mcp"), ("unnamed", "http://127.0.0.2:1/mcp"),
        ]
        let script: JSONValue = ["turns": [HarnessEndToEndTests.say("Carrying on.")]]
        try await HarnessEndToEndTests().withCluster(script, args: ["--allow-internal", "127.0.0.2"]) { cluster in
            let agent = try await cluster.store.createAgent(
                name: "mcp", model: "scripted",
                toolsJSON: JSONValue.array(servers.map { ["type": "mcp_toolset", "mcp_server_name": .string($0.0)] }).text,
                configJSON: JSONValue.object(["mcp_servers": .array(servers.map { ["type": "url", "name": .string($0.0), "url": .string($0.1)] })]).text)
            // The environment names three servers; `unnamed` is not in its allowed_hosts.
            let hosts = [server.address, closed.address]
            let environment = try await cluster.store.createEnvironment(
                name: "mcp", configJSON: JSONValue.object(["networking": ["type": "limited", "allowed_hosts": .array(hosts.map(JSONValue.string))]]).text)
            let session = try await cluster.store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage("go"))
            let (reason, events) = try await cluster.waitForIdle(session)
            #expect(reason == "end_turn", "the turn went on without the servers")
            let errors = events.filter { $0.type == .sessionError }.map(\.json)
            let byServer = Dictionary(errors.compactMap { error in error["error"]?["mcp_server_name"]?.stringValue.map { ($0, error["error"]!) } },
                                      uniquingKeysWith: { first, _ in first })
            #expect(byServer.count == 4, "\(errors)")
            for (name, error) in byServer {
                let message = error["message"]?.stringValue ?? ""
                #expect(error["type"] == "mcp_connection_failed_error", "\(name): \(error)")
                #expect(message.utf8.count <= 600 && !message.contains("LEAKED-BODY"), "\(name): \(message)")
            }
            #expect(byServer["endless"]?["message"]?.stringValue?.contains("more than 4194304 bytes") == true, "\(byServer["endless"] ?? .null)")
            #expect(byServer["leaky"]?["message"]?.stringValue?.hasSuffix("answered HTTP 500") == true, "\(byServer["leaky"] ?? .null)")
            #expect(byServer["closed"]?["message"]?.stringValue?.contains("operator has not opened") == true, "\(byServer["closed"] ?? .null)")
            #expect(byServer["unnamed"]?["message"]?.stringValue?.contains("network policy") == true, "\(byServer["unnamed"] ?? .null)")
            // The harness is alive and serving: the next session runs on it.
            let next = try await cluster.store.createSession(agent: cluster.agent, environment: cluster.environment, firstMessage: JSONText.userMessage("again"))
            #expect(try await cluster.waitForIdle(next).0 == "end_turn")
        }
    }
}
