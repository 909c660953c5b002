import DroverCore
import DroverIO
import DroverTestSupport
import Foundation
import Synchronization

/// The hostile clients of a chaos run (issue #20), at work while harnesses and a pool are killed:
/// malformed HTTP at `drover api` and the scripted model, malformed lines at the pools, floods of
/// silent connections at all of them, and sessions whose agent's MCP servers answer endlessly or
/// with a leaky error body and whose tool calls write into FIFOs. A breach is a daemon that died,
/// a malformed request left unanswered, a probe not served during a flood, or a hostile session
/// whose log holds more than a bounded error.
final class HostilePhase: Sendable {
    /// The tenant's MCP servers, on 127.0.0.2 (which the run's harnesses open as an operator would).
    let server: SocketHTTPServer
    static let leak = "LEAKED-SERVER-BODY"
    private let state = Mutex<(answered: Int, floods: Int, breaches: [String])>((0, 0, []))

    init() throws {
        server = try SocketHTTPServer(host: "127.0.0.2", port: 0)
        server.start { request, socket in
            guard request.path == "/endless" else {
                SocketHTTPServer.respond(socket, status: 500, contentType: "text/plain", body: Array("\(Self.leak) stack trace".utf8))
                return
            }
            _ = try? socket.send(bytes: Array("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n[".utf8))
            let chunk = Array(String(repeating: "1,", count: 32_768).utf8)
            while (try? socket.send(bytes: chunk)) != nil {}
        }
    }

    /// The first user message of hostile sessions, which the script's variant answers.
    static let prompt = "hostile tenant"

    /// The scripted turns of hostile sessions: FIFOs made, then written to (twice, in parallel).
    static let variant: JSONValue = [
        "match": .string(prompt),
        "turns": [
            ["content": [["type": "tool_use", "name": "bash", "input": ["command": "mkfifo p q"]]]],
            ["content": [["type": "tool_use", "name": "write", "input": ["file_path": "p", "content": "x"]],
                         ["type": "tool_use", "name": "write", "input": ["file_path": "q", "content": "y"]]]],
            ["content": [["type": "text", "text": "done"]]],
        ],
    ]

    /// The hostile agent's config and tools, and the environment that names its servers.
    var agentConfig: JSONValue {
        ["mcp_servers": [
            ["type": "url", "name": "endless", "url": .string("http://\(server.address)/endless")],
            ["type": "url", "name": "leaky", "url": .string("http://\(server.address)/leaky")],
        ]]
    }
    static let agentTools: JSONValue = [
        ["type": "agent_toolset_20260401"], ["type": "mcp_toolset", "mcp_server_name": "endless"], ["type": "mcp_toolset", "mcp_server_name": "leaky"],
    ]
    var environmentConfig: JSONValue { ["networking": ["type": "limited", "allowed_hosts": [.string(server.address)]]] }

    private func breach(_ text: String) { state.withLock { $0.breaches.append(text) } }

    /// Malformed requests, each on its own connection: each must be answered with a 4xx or 5xx.
    static let malformed: [String] = [
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n",
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;" + String(repeating: "e", count: 5000) + "\r\n{}\r\n0\r\n\r\n",
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + String(repeating: "X-T: v\r\n", count: 2000),
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        "GET /v1/agents HTTP/1.1\r\nHost: x\r\nx-big: " + String(repeating: "a", count: 40_000) + "\r\n\r\n",
        "GET /v1/agents HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "\u{01}\u{02}GARBAGE \u{7f}\r\n\r\n",
    ]

    func sendMalformed(to address: String) {
        for text in Self.malformed {
            do {
                let client = try HTTPConnection.connect(address, timeout: 15)
                defer { client.close() }
                try? client.send(text)
                guard let status = try client.response()?.status, (400..<600).contains(status) else {
                    breach("\(address): \(text.prefix(40).debugDescription) was not answered with an error status")
                    continue
                }
                state.withLock { $0.answered += 1 }
            } catch {
                breach("\(address): could not send \(text.prefix(40).debugDescription): \(error)")
            }
        }
    }

    /// Malformed lines at a pool, before any hello: each gets a coded error on a live connection.
    /// `alive`: whether the pool still runs (the chaos run SIGKILLs one; a failure against a pool it
    /// just killed is no breach).
    func sendMalformedLines(to address: String, alive: @Sendable () -> Bool) {
        func breach(_ text: String) {
            Thread.sleep(forTimeInterval: 0.3)
            if alive() { self.breach(text) }
        }
        guard let (host, port) = parseHostPort(address), let socket = try? Socket.connect(host: host, port: port) else {
            breach("pool \(address) could not be reached")
            return
        }
        defer { socket.close() }
        socket.setReadTimeout(10)
        let lines: [[UInt8]] = [
            Array("not json\n".utf8), Array(#"{"id":1,"op":"execute","sandbox":"x"}"#.utf8) + [10], Array(#"{"op":"hello"}"#.utf8) + [10],
            [UInt8](repeating: UInt8(ascii: "a"), count: 9 << 20) + [10],
        ]
        var framer = LineFramer(maxLineLength: 1 << 20)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        for line in lines {
            guard (try? socket.send(bytes: line)) != nil else {
                breach("pool \(address) closed the connection on a malformed line")
                return
            }
            var answered = false
            while !answered {
                guard let count = try? socket.read(into: &buffer), count > 0 else {
                    breach("pool \(address) did not answer a malformed line")
                    return
                }
                answered = framer.feed(buffer[0..<count]).contains { if case .line(let bytes) = $0 { String(decoding: bytes, as: UTF8.self).contains("\"error\"") } else { false } }
            }
            state.withLock { $0.answered += 1 }
        }
    }

    /// 300 silent connections at each address, held while `probe` runs from another client
    /// address (127.0.0.3); the probe must be served.
    func flood(_ addresses: [String], probe: @Sendable () -> String?) {
        var held: [Socket] = []
        for address in addresses {
            guard let (host, port) = parseHostPort(address) else { continue }
            for _ in 0..<300 { if let socket = try? Socket.connect(host: host, port: port) { held.append(socket) } }
        }
        if let failure = probe() { breach("during a flood: \(failure)") }
        held.forEach { $0.close() }
        state.withLock { $0.floods += 1 }
    }

    /// Rounds of all of it until `running` says stop.
    func attack(api: String, model: String, pools: @escaping @Sendable () -> [(address: String, alive: @Sendable () -> Bool)],
                running: @escaping @Sendable () -> Bool) -> Thread {
        let thread = Thread { [self] in
            var round = 0
            while running() {
                sendMalformed(to: api)
                sendMalformed(to: model)
                for pool in pools() where pool.alive() { sendMalformedLines(to: pool.address, alive: pool.alive) }
                if round % 3 == 0 {
                    flood([api, model] + pools().map(\.address)) {
                        guard let client = try? HTTPConnection.connect(api, from: "127.0.0.3", timeout: 15) else { return "the API refused a connection" }
                        defer { client.close() }
                        guard let status = (try? client.request("GET", "/v1/agents"))??.status, status == 401 else { return "the API did not answer a probe" }
                        return nil
                    }
                }
                round += 1
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        thread.name = "drover.chaos.hostile"
        thread.start()
        return thread
    }

    /// The hostile sessions' logs: each session idle, every FIFO write refused, MCP failures
    /// bounded and free of the servers' bodies. Returns the breaches, and a summary line.
    func check(events: [(type: String, payload: String)], sessions: Int) -> (breaches: [String], summary: String) {
        var breaches = state.withLock { $0.breaches }
        let writes = events.filter { $0.type == "agent.tool_result" && $0.payload.contains("not a regular file") }.count
        let errors = events.filter { $0.type == "session.error" }
        if events.contains(where: { $0.payload.contains(Self.leak) }) { breaches.append("a server's body reached a hostile session's log") }
        if let long = errors.first(where: { $0.payload.utf8.count > 1000 }) { breaches.append("an unbounded session.error: \(long.payload.prefix(200))") }
        if !errors.contains(where: { $0.payload.contains("more than 4194304 bytes") }) { breaches.append("no session.error for the endless MCP server") }
        if writes < 2 * sessions { breaches.append("\(writes) FIFO writes refused, \(2 * sessions) expected") }
        let (answered, floods) = state.withLock { ($0.answered, $0.floods) }
        return (breaches, "hostile: \(answered) malformed requests and lines answered with codes, \(floods) floods of 300 connections per daemon, "
            + "\(writes) FIFO writes refused, \(errors.count) bounded MCP errors; \(breaches.count) breaches")
    }

    func stop() { server.stop() }
}
