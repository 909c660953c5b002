import DroverCore
import DroverIO
import DroverScriptedModel
import DroverTestSupport
import Foundation
import Testing

/// Issue #20, black-box against the real daemons: what an attacker with no key can send to
/// `drover api`, the scripted model and the ops endpoints, what a tenant can ask of the pool, and
/// that each daemon answers with a code and keeps serving.
@Suite struct HostileInputTests {
    /// `-2` as a chunk size trapped `drover api` (and the scripted model and ops endpoints, which
    /// share the parser). Every malformed chunk shape is a 400, and the daemon keeps serving.
    @Test func aNegativeChunkSizeIsA400AndEveryDaemonKeepsServing() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo, ["--metrics-listen", "127.0.0.1:0"])
            let key = try await api.key(org: "hostile")
            let ops = try #require(try await api.daemon.waitForLog("listening")["metrics"]?.stringValue)
            let model = try ScriptedModelServer(script: try ModelScript.load(["turns": []]), host: "127.0.0.1", port: 0, log: Log(component: "scripted-model", minimum: .error))
            model.start()
            defer { model.stop() }
            let chunked = { (target: String, size: String) in
                "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\n{}\r\n0\r\n\r\n"
            }
            for address in [api.address, ops, "127.0.0.1:\(model.listener.port)"] {
                for size in ["-2", "+2", "-0x2", "2;" + String(repeating: "e", count: 5000)] {
                    let client = try HTTPConnection.connect(address)
                    try client.send(chunked("/v1/agents", size))
                    let answer = try client.response()
                    #expect(answer?.status == 400, "\(address) \(size.prefix(8)): \(String(describing: answer))")
                    client.close()
                }
                // Endless trailers are cut off, not buffered.
                let trailers = try HTTPConnection.connect(address)
                try trailers.send("POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + String(repeating: "X-T: v\r\n", count: 2000))
                #expect(try trailers.response()?.status == 431, "\(address): trailers")
                trailers.close()
            }
            // Still serving, all three.
            let alive = try HTTPConnection.connect(api.address)
            #expect(try alive.request("GET", "/v1/agents", headers: [("x-api-key", key)])?.status == 200)
            // The console cannot be framed by another site.
            let console = try alive.request("GET", "/console/")
            #expect(console?.headers["content-security-policy"]?.contains("frame-ancestors 'none'") == true, "\(String(describing: console?.headers))")
            alive.close()
            #expect(try HTTPConnection.connect(ops).request("GET", "/metrics")?.status == 200)
            #expect(try HTTPConnection.connect("127.0.0.1:\(model.listener.port)").request("GET", "/healthz")?.status != nil)
            #expect(await api.stop() == 0)
        }
    }

    /// Metrics labels come from a fixed set: a method token or a fleet segment of a client's
    /// choosing (with or without a key) is `other`, never a new series.
    @Test func metricsLabelsComeFromAFixedSet() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo, ["--metrics-listen", "127.0.0.1:0"])
            let key = try await api.key(org: "labels")
            let ops = try #require(try await api.daemon.waitForLog("listening")["metrics"]?.stringValue)
            for index in 0..<20 {
                let client = try HTTPConnection.connect(api.address)
                _ = try client.request("BREW\(index)", "/v1/fleet/x\(index)")
                client.close()
                let keyed = try HTTPConnection.connect(api.address)
                _ = try keyed.request("GET", "/v1/fleet/y\(index)/z", headers: [("x-api-key", key)])
                _ = try keyed.request("GET", "/v1/sessions/s\(index)/\(index)/\(index)/\(index)/\(index)/\(index)", headers: [("x-api-key", key)])
                keyed.close()
            }
            let text = try await PrometheusText.get(ops, "/metrics").1
            #expect(!text.contains("BREW") && !text.contains("x1") && !text.contains("y1"), "client text became a label")
            let series = text.split(separator: "\n").filter { $0.hasPrefix("drover_api_requests_total{") }
            #expect(series.count <= 4, "\(series)")
            #expect(await api.stop() == 0)
        }
    }

    /// One client address cannot take every connection: past its share it gets 503 while another
    /// address is still served.
    @Test func oneClientCannotTakeEveryConnection() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo, ["--max-connections", "64", "--max-connections-per-client", "8"])
            let key = try await api.key(org: "share")
            var held: [HTTPConnection] = []
            defer { held.forEach { $0.close() } }
            for _ in 0..<8 {
                let client = try HTTPConnection.connect(api.address)
                #expect(try client.request("GET", "/v1/agents", headers: [("x-api-key", key)])?.status == 200)
                held.append(client)
            }
            let ninth = try HTTPConnection.connect(api.address)
            let refused = try ninth.response()
            #expect(refused?.status == 503 && refused?.body.contains("overloaded_error") == true && refused?.headers["retry-after"] == "1",
                    "\(String(describing: refused))")
            ninth.close()
            let other = try HTTPConnection.connect(api.address, from: "127.0.0.2")
            #expect(try other.request("GET", "/v1/agents", headers: [("x-api-key", key)])?.status == 200, "another client is served")
            other.close()
            #expect(await api.stop() == 0)
        }
    }

    /// The ops endpoint (and the scripted model, the same server) is capped: a flood of silent
    /// connections gets 503 past the cap, and the daemon still answers /metrics once they go.
    @Test func theOpsEndpointIsCapped() async throws {
        let server = try SocketHTTPServer(host: "127.0.0.1", port: 0, maxConnections: 16, requestDeadline: 2)
        server.start { _, socket in SocketHTTPServer.respond(socket, status: 200, contentType: "text/plain", body: Array("ok".utf8)) }
        defer { server.stop() }
        var silent: [HTTPConnection] = []
        for _ in 0..<16 { silent.append(try HTTPConnection.connect(server.address)) }
        try await Polling.until(timeout: 5) { server.connectionCount == 16 }
        let refused = try HTTPConnection.connect(server.address)
        #expect(try refused.response()?.status == 503)
        refused.close()
        // Silent ones are cut at the request deadline with 408, and the place is free again.
        #expect(try silent[0].response()?.status == 408)
        silent.forEach { $0.close() }
        try await Polling.until(timeout: 5) { server.connectionCount == 0 }
        #expect(try HTTPConnection.connect(server.address).request("GET", "/")?.status == 200)
    }

    /// The same against a real daemon: a pool's ops endpoint (256 connections at most) under 300
    /// silent connections refuses the surplus with 503 and answers /metrics once they go.
    @Test func aRealDaemonsOpsEndpointIsCapped() async throws {
        let pool = try await RunningPool.start(["--metrics-listen", "127.0.0.1:0"])
        let address = try #require(try await pool.daemon.waitForLog("metrics listening")["address"]?.stringValue)
        var silent: [HTTPConnection] = []
        for _ in 0..<300 { silent.append(try HTTPConnection.connect(address, timeout: 10)) }
        // The last ones past the cap were answered at once; the first ones are still waiting.
        let refused = try silent.suffix(20).compactMap { try $0.response()?.status }
        #expect(refused.count == 20 && refused.allSatisfy { $0 == 503 }, "\(refused)")
        silent.forEach { $0.close() }
        try await Polling.until("a place is free", timeout: 10) {
            (try? HTTPConnection.connect(address, timeout: 5).request("GET", "/metrics")?.status) == 200
        }
        #expect(await pool.stop() == 0)
    }

    /// Operator ceilings on what a tenant asks of a sandbox: the API refuses the environment, the
    /// pool refuses the provision, each with a clear error.
    @Test func resourcesAboveTheCeilingsAreRefused() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo, ["--max-resources", "memory_mb=4096"])
            let key = try await api.key(org: "ceilings")
            let client = try HTTPConnection.connect(api.address)
            defer { client.close() }
            for (resources, status) in [(#"{"memory_mb": 1000000000}"#, 400), (#"{"memory_mb": 8192}"#, 400), (#"{"timeout_s": 1e9}"#, 400),
                                        (#"{"processes": 100000}"#, 400), (#"{"memory_mb": 4096, "timeout_s": 600}"#, 200)] {
                let answer = try client.request("POST", "/v1/environments", headers: [("x-api-key", key)],
                                                body: #"{"name": "e", "config": {"type": "cloud", "resources": \#(resources)}}"#)
                #expect(answer?.status == status, "\(resources): \(String(describing: answer))")
                if status == 400 { #expect(answer?.body.contains("ceiling") == true, "\(String(describing: answer))") }
            }
            #expect(await api.stop() == 0)
        }
        _ = try await RunningPool.withSandbox(["--max-resources", "processes=64"]) { _, client, _ in
            for resources: JSONValue in [["memory_mb": 1e9], ["processes": 65], ["disk_mb": 1e8], ["cpu_s": 1e9]] {
                do {
                    _ = try await client.provision(resources: resources)
                    Issue.record("provisioned \(resources)")
                } catch let failure as PoolProtocol.Failure {
                    #expect(failure.code == .resourcesAboveCeiling && failure.message.contains("ceiling"), "\(failure)")
                }
            }
            _ = try await client.provision(resources: ["processes": 64])
        }
    }

    /// Issue #27 (5, 10): a session whose initial_events are refused is not left behind (it was
    /// committed before they were checked), and malformed vault_ids are a 400, not a 500 (they
    /// were spliced into a hand-built array literal).
    @Test func aRefusedSessionLeavesNothingBehind() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo)
            let key = try await api.key(org: "atomic")
            let client = try HTTPConnection.connect(api.address)
            defer { client.close() }
            let headers = [("x-api-key", key)]
            let agent = try #require(try client.request("POST", "/v1/agents", headers: headers, body: #"{"name": "a", "model": "claude-sonnet-4-5"}"#))
            let environment = try #require(try client.request("POST", "/v1/environments", headers: headers, body: #"{"name": "e", "config": {"type": "cloud"}}"#))
            let agentID = try #require((try? JSONValue.parse(agent.body))?["id"]?.stringValue)
            let environmentID = try #require((try? JSONValue.parse(environment.body))?["id"]?.stringValue)
            let refused = [
                #""initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}, {"type": "agent.message", "content": []}]"#,
                #""initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "\#(String(repeating: "x", count: 1_100_000))"}]}]"#,
                #""vault_ids": ["", "a"]"#, #""vault_ids": ["a"}"]"#, #""vault_ids": ["vlt_a", "vlt_a"]"#,
            ]
            for extra in refused {
                let answer = try client.request("POST", "/v1/sessions", headers: headers,
                                                body: #"{"agent": "\#(agentID)", "environment_id": "\#(environmentID)", \#(extra)}"#)
                #expect(answer.map { (400..<500).contains($0.status) } == true, "\(extra.prefix(80)): \(String(describing: answer?.status)) \(answer?.body.prefix(200) ?? "")")
            }
            let listed = try #require(try client.request("GET", "/v1/sessions", headers: headers))
            #expect((try? JSONValue.parse(listed.body))?["data"] == .array([]), "a refused create left a session: \(listed.body.prefix(300))")
            // A valid create with initial events still writes both.
            let made = try #require(try client.request("POST", "/v1/sessions", headers: headers, body: #"""
                {"agent": "\#(agentID)", "environment_id": "\#(environmentID)", "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]}
                """#))
            #expect(made.status == 200, "\(made.body.prefix(300))")
            let id = try #require((try? JSONValue.parse(made.body))?["id"]?.stringValue)
            let events = try #require(try client.request("GET", "/v1/sessions/\(id)/events", headers: headers))
            #expect(events.body.contains("user.message"), "\(events.body.prefix(300))")
            #expect(await api.stop() == 0)
        }
    }

    /// Issue #27, typed resources: a request whose resource its type cannot hold (metadata that
    /// is not strings, a custom tool without its description, an MCP toolset naming no server)
    /// is a 400 that names the field, and nothing of it is written; an update likewise leaves
    /// the resource as it was.
    @Test func aRequestWhoseResourceItsTypeCannotHoldIsRefusedAndWritesNothing() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo)
            let key = try await api.key(org: "typed")
            let client = try HTTPConnection.connect(api.address)
            defer { client.close() }
            let headers = [("x-api-key", key)]
            func post(_ path: String, _ body: String) throws -> (status: Int, body: JSONValue) {
                let answer = try #require(try client.request("POST", path, headers: headers, body: body))
                return (answer.status, (try? JSONValue.parse(answer.body)) ?? .null)
            }
            let agent = try post("/v1/agents", #"{"name": "a", "model": "claude-sonnet-4-5"}"#)
            let environment = try post("/v1/environments", #"{"name": "e", "config": {"type": "cloud"}}"#)
            let agentID = try #require(agent.body["id"]?.stringValue)
            let environmentID = try #require(environment.body["id"]?.stringValue)
            let refused: [(path: String, body: String, field: String)] = [
                ("/v1/agents", #"{"name": "b", "model": "m", "metadata": {"k": 1}}"#, "metadata.k"),
                ("/v1/agents", #"{"name": "b", "model": "m", "tools": [{"type": "custom", "name": "x"}]}"#, "tools[0]"),
                ("/v1/agents", #"{"name": "b", "model": "m", "tools": [{"type": "mcp_toolset"}]}"#, "tools[0]"),
                ("/v1/agents", #"{"name": "b", "model": "m", "tools": [{"type": "no_such_toolset"}]}"#, "tools[0]"),
                ("/v1/agents", #"{"name": "b", "model": {"id": "m", "speed": 3}}"#, "model.speed"),
                ("/v1/agents/\(agentID)", #"{"version": 1, "metadata": {"k": [1]}}"#, "metadata.k"),
                ("/v1/environments", #"{"name": "f", "metadata": {"k": true}}"#, "metadata.k"),
                ("/v1/environments/\(environmentID)", #"{"metadata": {"k": {}}}"#, "metadata.k"),
                ("/v1/sessions", #"{"agent": "\#(agentID)", "environment_id": "\#(environmentID)", "metadata": {"k": 2}}"#, "metadata.k"),
                ("/v1/vaults", #"{"display_name": "v", "metadata": {"k": 2}}"#, "metadata.k"),
            ]
            for request in refused {
                let answer = try post(request.path, request.body)
                let message = answer.body["error"]?["message"]?.stringValue ?? ""
                #expect(answer.status == 400 && message.contains(request.field), "\(request.body): \(answer.status) \(message)")
            }
            // Nothing was written: one agent at version 1, one environment as made, no session or vault.
            for (path, count) in [("/v1/agents", 1), ("/v1/environments", 1), ("/v1/sessions", 0), ("/v1/vaults", 0)] {
                let listed = try #require(try client.request("GET", path, headers: headers))
                let data = (try? JSONValue.parse(listed.body))?["data"]
                guard case .array(let items)? = data else { Issue.record("\(path): \(listed.body.prefix(200))"); continue }
                #expect(items.count == count, "\(path): \(listed.body.prefix(300))")
                if path == "/v1/agents" { #expect(items.first?["version"] == 1 && items.first?["metadata"] == [:]) }
                if path == "/v1/environments" { #expect(items.first?["metadata"] == [:]) }
            }
            #expect(await api.stop() == 0)
        }
    }

    /// Issue #27 (7): unknown methods on a served route get 405 with `Allow`; `Expect:
    /// 100-continue` is answered before the body; `Connection` is a token list; a refusal sent
    /// while the client is still sending its body reaches it (a lingering close, not a reset).
    @Test func methodsExpectationsConnectionTokensAndRefusalsMidBody() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo)
            let key = try await api.key(org: "http")
            let client = try HTTPConnection.connect(api.address)
            defer { client.close() }
            let refused = try client.request("PUT", "/v1/sessions/sesn_x", headers: [("x-api-key", key)])
            #expect(refused?.status == 405 && refused?.headers["allow"] == "DELETE, GET, POST", "\(String(describing: refused))")
            #expect(try client.request("PATCH", "/v1/agents", headers: [("x-api-key", key)])?.headers["allow"] == "GET, POST")
            #expect(try client.request("GET", "/v1/nothing", headers: [("x-api-key", key)])?.status == 404)

            // Expect: 100-continue: the interim answer comes before the body is sent.
            let body = #"{"name": "e", "config": {"type": "cloud"}}"#
            try client.send("POST /v1/environments HTTP/1.1\r\nHost: x\r\nx-api-key: \(key)\r\ncontent-type: application/json\r\n"
                + "content-length: \(body.utf8.count)\r\nexpect: 100-continue\r\n\r\n")
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = try client.socket.read(into: &buffer)
            #expect(String(decoding: buffer[0..<count], as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
            try client.send(body)
            #expect(try client.response()?.status == 200)

            // "keep-alive, close" closes.
            let closing = try HTTPConnection.connect(api.address)
            defer { closing.close() }
            #expect(try closing.request("GET", "/v1/agents", headers: [("x-api-key", key), ("connection", "keep-alive, close")])?.status == 200)
            #expect(closing.closed(within: 5), "the connection stayed open")

            // A body over the limit, already on its way: the 413 still arrives.
            let big = try HTTPConnection.connect(api.address)
            defer { big.close() }
            try big.send("POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n" + String(repeating: "x", count: 1 << 20))
            #expect(try big.response()?.status == 413)
            #expect(await api.stop() == 0)
        }
    }
}
