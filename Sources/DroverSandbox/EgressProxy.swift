import CDroverSys
import DroverCore
import DroverIO
import DroverTLS
import Foundation
import Synchronization

/// The pool's egress proxy: the only way out of a networked sandbox.
///
/// Each call of a networked sandbox runs in a network namespace of its own whose only listener,
/// `127.0.0.1:3128`, was made there by the launcher and handed to the pool (`drover_spawn`). The
/// proxy accepts on it while the call runs (`open`), so it knows which sandbox every connection
/// comes from and no process of ours runs inside the sandbox's namespace. For each connection
/// the request head is read, `EgressPlanner` decides by name, the name is resolved once and every
/// address checked against the operator's `AddressRule` (no tenant setting opens loopback, private
/// or metadata addresses), the connection goes to exactly a checked address, and the bytes are
/// relayed (`EgressRelay`). Every connection is logged (sandbox, session, host, bytes, decision)
/// and counted; refusals are answered with a short text and an `X-Drover-Error` code.
///
/// Every listener and connection belongs to the proxy's one event loop; only the look-up, the
/// connect and a TLS handshake, which block, run on its bounded pool of threads. A call has at
/// most `maxConnectionsPerCall` connections.
final class EgressProxy: Sendable {
    private let maxConnectionsPerCall: Int
    private let rule: AddressRule
    private let log: Log
    private let metrics: PoolMetrics
    /// Extra trusted roots for repositories' HTTPS remotes (`DROVER_EGRESS_CA_FILE`: a private CA).
    private let caFile: String?
    let loop: EventLoop
    private let connects: BlockingPool
    static let maxHead = 32 * 1024
    static let headTimeout: Duration = .seconds(30)
    static let connectTimeout: Double = 10

    init(maxConnectionsPerCall: Int, rule: AddressRule, log: Log, metrics: PoolMetrics) throws {
        self.maxConnectionsPerCall = maxConnectionsPerCall
        self.rule = rule
        self.log = log
        self.metrics = metrics
        caFile = ProcessInfo.processInfo.environment["DROVER_EGRESS_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        loop = try EventLoop(name: "drover.pool.egress")
        connects = BlockingPool(name: "drover.pool.egress.connect", threads: 8)
        loop.start()
    }

    /// Ends the loop (the pool is stopping; every call's gate is closed by then).
    func stop() async { await loop.stop() }

    /// One call's proxy: accepting until `close`, when the call has ended; its connections end
    /// then too. Its state is the loop's.
    final class Gate: @unchecked Sendable {
        fileprivate let listener: Int32
        fileprivate var closed = false
        /// Connections reading their head, connecting, or relaying, by id.
        fileprivate var open: [Int: Connection] = [:]
        fileprivate var nextID = 0
        private let proxy: EgressProxy

        fileprivate init(listener: Int32, proxy: EgressProxy) {
            self.listener = listener
            self.proxy = proxy
        }

        /// Stops accepting and ends every connection, on the loop; the listener's descriptor is
        /// closed there after the loop stops watching it, so no accept can ever reach a number
        /// since given to another call's listener.
        func close() {
            proxy.loop.execute { [self] in
                guard !closed else { return }
                closed = true
                proxy.loop.unregister(listener)
                Glibc.close(listener)
                for connection in open.values { connection.end(on: proxy.loop) }
                open = [:]
            }
        }
    }

    /// A connection from the sandbox, from its head to its end. Loop-confined.
    fileprivate final class Connection: @unchecked Sendable {
        let id: Int
        let client: Socket
        var head: [UInt8] = []
        let accepted = ContinuousClock.now
        /// Set once the head has come; nil while reading it.
        var relay: EgressRelay?
        var reading = true

        init(id: Int, client: Socket) {
            self.id = id
            self.client = client
        }

        /// Ends whatever stage it is in; a connect in progress finds the gate closed and closes
        /// what it opened.
        func end(on loop: EventLoop) {
            if let relay { return relay.stop() }
            if reading {
                loop.unregister(client.fd)
                client.close()
            }
            reading = false
        }
    }

    /// Serves a call's listener (`ProcessRunner.Started.proxyListener`) for `sandbox`.
    func open(_ listener: Int32, for sandbox: Sandbox, network: SandboxNetwork) -> Gate {
        let gate = Gate(listener: listener, proxy: self)
        loop.execute { [self] in
            guard !gate.closed else { return }
            _ = drover_set_nonblocking(listener)
            loop.register(listener, .readable) { [self] _ in acceptAll(gate, sandbox: sandbox, network: network) }
            loop.schedule(after: Self.headTimeout) { [self] in expireHeads(gate, sandbox: sandbox) }
        }
        return gate
    }

    private func acceptAll(_ gate: Gate, sandbox: Sandbox, network: SandboxNetwork) {
        while !gate.closed {
            let fd = drover_accept_nonblock(gate.listener)
            guard fd >= 0 else { return }
            let socket = Socket(fd: fd)
            guard gate.open.count < maxConnectionsPerCall else {
                refuse(socket, EgressPlanner.Refusal(status: 503, code: "too_many_connections", message: "this call has \(maxConnectionsPerCall) connections open"),
                       sandbox: sandbox, target: "?")
                continue
            }
            gate.nextID += 1
            let connection = Connection(id: gate.nextID, client: socket)
            gate.open[connection.id] = connection
            loop.register(fd, .readable) { [self] _ in readHead(connection, gate: gate, sandbox: sandbox, network: network) }
        }
    }

    /// Heads still unread after `headTimeout` are refused; checked again as later ones come due.
    private func expireHeads(_ gate: Gate, sandbox: Sandbox) {
        guard !gate.closed else { return }
        let now = ContinuousClock.now
        for connection in gate.open.values where connection.reading && now - connection.accepted >= Self.headTimeout {
            refuseHead(connection, EgressPlanner.Refusal(status: 408, code: "bad_proxy_request", message: "no request head within 30 s"),
                       gate: gate, sandbox: sandbox)
        }
        let next = gate.open.values.filter(\.reading).map { Self.headTimeout - (now - $0.accepted) }.min() ?? Self.headTimeout
        loop.schedule(after: max(next, .milliseconds(10))) { [self] in expireHeads(gate, sandbox: sandbox) }
    }

    private func readHead(_ connection: Connection, gate: Gate, sandbox: Sandbox, network: SandboxNetwork) {
        let ended = !connection.client.readAvailable(while: { connection.head.count <= Self.maxHead }) { connection.head += $0 }
        let end = HTTPRequestParser.find([13, 10, 13, 10], in: connection.head[...])
        guard end != nil || (!ended && connection.head.count <= Self.maxHead) else {
            return refuseHead(connection, Self.badHead, gate: gate, sandbox: sandbox)
        }
        guard let end else { return }
        guard case .success(let head) = HTTPRequestParser.head(connection.head[..<end]) else {
            return refuseHead(connection, Self.badHead, gate: gate, sandbox: sandbox)
        }
        loop.unregister(connection.client.fd)
        connection.reading = false
        let body = Array(connection.head[(end + 4)...])
        let plan = EgressPlanner.plan(head, network: network)
        let (host, port): (String, Int)
        switch plan {
        case .refuse(let refusal):
            gate.open[connection.id] = nil
            return refuse(connection.client, refusal, sandbox: sandbox, target: head.target)
        case .tunnel(let h, let p), .forward(let h, let p, _): (host, port) = (h, p)
        case .repository(let h, let p, _, _): (host, port) = (h, p)
        }
        let client = connection.client
        Task { [self] in
            let upstream: Result<Upstream, EgressPlanner.Refusal>
            do {
                upstream = .success(try await connects.run { [self] in try connectUpstream(plan, host: host, port: port) })
            } catch let refusal as OutboundRefusal {
                upstream = .failure(EgressPlanner.Refusal(status: refusal.code == "egress_denied" ? 403 : 502, code: refusal.code, message: refusal.message))
            } catch {
                upstream = .failure(EgressPlanner.Refusal(status: 502, code: "upstream_unreachable", message: "\(host):\(port) cannot be reached: \(error)"))
            }
            loop.execute { [self] in
                guard gate.open[connection.id] != nil, !gate.closed else {
                    if case .success(let opened) = upstream { opened.close() }
                    client.close()
                    return
                }
                switch upstream {
                case .failure(let refusal):
                    gate.open[connection.id] = nil
                    refuse(client, refusal, sandbox: sandbox, target: "\(host):\(port)")
                case .success(let opened):
                    relay(connection, to: opened, plan: plan, body: body, gate: gate, sandbox: sandbox, host: host, port: port)
                }
            }
        }
    }

    static let badHead = EgressPlanner.Refusal(status: 400, code: "bad_proxy_request", message: "the request head is malformed or larger than \(maxHead) bytes")

    /// A connection still reading its head is refused: off the loop, out of the gate, answered.
    private func refuseHead(_ connection: Connection, _ refusal: EgressPlanner.Refusal, gate: Gate, sandbox: Sandbox) {
        loop.unregister(connection.client.fd)
        connection.reading = false
        gate.open[connection.id] = nil
        refuse(connection.client, refusal, sandbox: sandbox, target: "?")
    }

    /// Resolves, checks and connects (on the pool's threads: each step may block).
    private func connectUpstream(_ plan: EgressPlanner.Plan, host: String, port: Int) throws -> Upstream {
        let addresses = try OutboundResolver.resolve(host: host, port: port, rule: rule)
        if case .repository(_, _, true, _) = plan {
            // The credential goes inside the encrypted stream: the proxy speaks TLS to the remote.
            return .tls(try TLSConnection(host: host, port: port, addresses: addresses, caFile: caFile, timeout: Self.connectTimeout))
        }
        var lastError: Error = SystemError(errno: EHOSTUNREACH, call: "connect")
        for address in addresses {
            do {
                return .plain(try Socket.connect(to: address, port: port, timeout: Self.connectTimeout))
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func relay(_ connection: Connection, to upstream: Upstream, plan: EgressPlanner.Plan, body: [UInt8], gate: Gate,
                       sandbox: Sandbox, host: String, port: Int) {
        let (toClient, toUpstream): ([UInt8], [UInt8])
        switch plan {
        case .tunnel: (toClient, toUpstream) = (Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8), body)
        case .forward(_, _, let rewritten), .repository(_, _, _, let rewritten): (toClient, toUpstream) = ([], Array(rewritten.utf8) + body)
        case .refuse: return
        }
        let kind = switch plan { case .repository: "repository"; case .tunnel: "connect"; default: "http" }
        let relay = EgressRelay(loop: loop, client: connection.client, upstream: upstream, toClient: toClient, toUpstream: toUpstream) { [self] relay in
            gate.open[connection.id] = nil
            metrics.egressConnections.inc(["decision": "allowed", "kind": kind])
            metrics.egressBytes.inc(["direction": "out"], by: Double(relay.moved.up))
            metrics.egressBytes.inc(["direction": "in"], by: Double(relay.moved.down))
            log.info(
                "egress", ("sandbox", .string(sandbox.id)), ("session", sandbox.session.map(JSONValue.string) ?? .null),
                ("host", .string(host)), ("port", .number(Double(port))), ("kind", .string(kind)), ("decision", "allowed"),
                ("bytes_out", .number(Double(relay.moved.up))), ("bytes_in", .number(Double(relay.moved.down))),
                ("ms", .number(((ContinuousClock.now - connection.accepted) / .milliseconds(1)).rounded())))
        }
        connection.relay = relay
        relay.start()
    }

    /// Answers a refusal (short: it fits the socket's buffer) and closes the connection.
    private func refuse(_ client: Socket, _ refusal: EgressPlanner.Refusal, sandbox: Sandbox, target: String) {
        let text = Array(EgressPlanner.refusal(refusal).utf8)
        _ = text.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        client.close()
        metrics.egressConnections.inc(["decision": "refused", "kind": refusal.code])
        log.info(
            "egress", ("sandbox", .string(sandbox.id)), ("session", sandbox.session.map(JSONValue.string) ?? .null),
            ("target", .string(target)), ("decision", "refused"), ("code", .string(refusal.code)), ("message", .string(refusal.message)))
    }
}

/// The far side of a relayed connection: a plain TCP socket, or a TLS stream (a repository's
/// HTTPS remote).
enum Upstream {
    case plain(Socket)
    case tls(TLSConnection)

    var fd: Int32 {
        switch self {
        case .plain(let socket): socket.fd
        case .tls(let connection): connection.fd
        }
    }

    var isTLS: Bool { if case .tls = self { true } else { false } }

    func send(_ bytes: [UInt8]) throws {
        switch self {
        case .plain(let socket): try socket.send(bytes: bytes)
        case .tls(let connection): try connection.send(bytes)
        }
    }

    func read(into buffer: inout [UInt8]) -> TLSConnection.Read {
        switch self {
        case .plain(let socket): Self.plainRead(socket.fd, into: &buffer)
        case .tls(let connection): connection.read(into: &buffer)
        }
    }

    /// Bytes written (0: would block), nil when the connection failed.
    func write(_ buffer: [UInt8], offset: Int, end: Int) -> Int? {
        switch self {
        case .plain(let socket): return Self.plainWrite(socket.fd, buffer, offset: offset, end: end)
        case .tls(let connection): return try? connection.write(Array(buffer[..<end]), from: offset)
        }
    }

    /// Half-closes a plain socket; a TLS stream stays open until the remote ends it.
    func shutdownWrite() {
        if case .plain(let socket) = self { Self.plainShutdownWrite(socket.fd) }
    }

    func close() {
        switch self {
        case .plain(let socket): socket.close()
        case .tls(let connection): connection.close()
        }
    }

    static func plainRead(_ fd: Int32, into buffer: inout [UInt8]) -> TLSConnection.Read {
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 { return .bytes(count) }
        if count < 0 && (errno == EINTR || errno == EAGAIN) { return .wouldBlock }
        return .closed
    }

    static func plainWrite(_ fd: Int32, _ buffer: [UInt8], offset: Int, end: Int) -> Int? {
        let written = buffer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, end - offset, Int32(MSG_NOSIGNAL)) }
        if written >= 0 { return written }
        return errno == EINTR || errno == EAGAIN ? 0 : nil
    }

    static func plainShutdownWrite(_ fd: Int32) { Glibc.shutdown(fd, Int32(SHUT_WR)) }
}
