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
/// relayed. Every connection is logged (sandbox, session, host,
/// bytes, decision) and counted; refusals are answered with a short text and an `X-Drover-Error`
/// code. One thread per connection, at most `maxConnectionsPerCall` per call.
final class EgressProxy: Sendable {
    private let maxConnectionsPerCall: Int
    private let rule: AddressRule
    private let log: Log
    private let metrics: PoolMetrics
    /// Extra trusted roots for repositories' HTTPS remotes (`DROVER_EGRESS_CA_FILE`: a private CA).
    private let caFile: String?
    static let maxHead = 32 * 1024
    static let connectTimeout: Double = 10

    init(maxConnectionsPerCall: Int, rule: AddressRule, log: Log, metrics: PoolMetrics) {
        self.maxConnectionsPerCall = maxConnectionsPerCall
        self.rule = rule
        self.log = log
        self.metrics = metrics
        caFile = ProcessInfo.processInfo.environment["DROVER_EGRESS_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// One call's proxy: accepting until `close`, when the call has ended; its relays end then too.
    final class Gate: Sendable {
        private let acceptor: ConnectionAcceptor
        private let closed = Atomic<Bool>(false)

        fileprivate init(_ acceptor: ConnectionAcceptor) { self.acceptor = acceptor }

        var isClosed: Bool { closed.load(ordering: .acquiring) }

        func close() {
            closed.store(true, ordering: .releasing)
            acceptor.stopAccepting()
            acceptor.shutdownAll()
        }
    }

    /// Serves a call's listener (`ProcessRunner.Started.proxyListener`) for `sandbox`.
    func open(_ listener: Int32, for sandbox: Sandbox, network: SandboxNetwork) -> Gate {
        let acceptor = ConnectionAcceptor(
            listener: Listener(adopting: listener, host: "127.0.0.1", port: UInt16(SandboxNetwork.proxyPort)),
            name: "drover.pool.egress", maxConnections: maxConnectionsPerCall)
        let gate = Gate(acceptor)
        acceptor.start(refuse: { [self] socket in
            let refusal = EgressPlanner.Refusal(status: 503, code: "too_many_connections", message: "this call has \(maxConnectionsPerCall) connections open")
            try? socket.send(bytes: Array(EgressPlanner.refusal(refusal).utf8))
        }, serve: { [self] socket in serve(socket, sandbox: sandbox, network: network, gate: gate) })
        return gate
    }

    private func serve(_ client: Socket, sandbox: Sandbox, network: SandboxNetwork, gate: Gate) {
        client.setReadTimeout(30)
        var buffered: [UInt8] = []
        let started = ContinuousClock.now
        guard let headEnd = readHead(client, &buffered), case .success(let head) = HTTPRequestParser.head(buffered[..<headEnd]) else {
            refuse(client, EgressPlanner.Refusal(status: 400, code: "bad_proxy_request", message: "the request head is malformed or larger than \(Self.maxHead) bytes"),
                   sandbox: sandbox, target: "?")
            return
        }
        client.setReadTimeout(nil)
        let body = Array(buffered[(headEnd + 4)...])
        let plan = EgressPlanner.plan(head, network: network)
        let (host, port): (String, Int)
        switch plan {
        case .refuse(let refusal):
            refuse(client, refusal, sandbox: sandbox, target: head.target)
            return
        case .tunnel(let h, let p), .forward(let h, let p, _): (host, port) = (h, p)
        case .repository(let h, let p, _, _): (host, port) = (h, p)
        }
        let upstream: Upstream
        do {
            let addresses = try OutboundResolver.resolve(host: host, port: port, rule: rule)
            switch plan {
            case .repository(_, _, true, _):
                // The credential goes inside the encrypted stream: the proxy speaks TLS to the remote.
                upstream = .tls(try TLSConnection(host: host, port: port, addresses: addresses, caFile: caFile, timeout: Self.connectTimeout))
            default:
                upstream = .plain(try Self.connect(addresses, port: port))
            }
        } catch let refusal as OutboundRefusal {
            let status = refusal.code == "egress_denied" ? 403 : 502
            refuse(client, EgressPlanner.Refusal(status: status, code: refusal.code, message: refusal.message), sandbox: sandbox, target: "\(host):\(port)")
            return
        } catch {
            refuse(client, EgressPlanner.Refusal(status: 502, code: "upstream_unreachable", message: "\(host):\(port) cannot be reached: \(error)"),
                   sandbox: sandbox, target: "\(host):\(port)")
            return
        }
        defer { upstream.close() }
        do {
            switch plan {
            case .tunnel:
                try client.send(bytes: Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8))
                if !body.isEmpty { try upstream.send(body) }
            case .forward(_, _, let rewritten), .repository(_, _, _, let rewritten):
                try upstream.send(Array(rewritten.utf8) + body)
            case .refuse: return
            }
        } catch {
            return
        }
        let (up, down) = Self.relay(client.fd, upstream, until: { gate.isClosed })
        let kind = switch plan { case .repository: "repository"; case .tunnel: "connect"; default: "http" }
        metrics.egressConnections.inc(["decision": "allowed", "kind": kind])
        metrics.egressBytes.inc(["direction": "out"], by: Double(up + body.count))
        metrics.egressBytes.inc(["direction": "in"], by: Double(down))
        log.info(
            "egress", ("sandbox", .string(sandbox.id)), ("session", sandbox.session.map(JSONValue.string) ?? .null),
            ("host", .string(host)), ("port", .number(Double(port))), ("kind", .string(kind)), ("decision", "allowed"),
            ("bytes_out", .number(Double(up + body.count))), ("bytes_in", .number(Double(down))),
            ("ms", .number(((ContinuousClock.now - started) / .milliseconds(1)).rounded())))
    }

    private func refuse(_ client: Socket, _ refusal: EgressPlanner.Refusal, sandbox: Sandbox, target: String) {
        try? client.send(bytes: Array(EgressPlanner.refusal(refusal).utf8))
        metrics.egressConnections.inc(["decision": "refused", "kind": refusal.code])
        log.info(
            "egress", ("sandbox", .string(sandbox.id)), ("session", sandbox.session.map(JSONValue.string) ?? .null),
            ("target", .string(target)), ("decision", "refused"), ("code", .string(refusal.code)), ("message", .string(refusal.message)))
    }

    // MARK: - Reading

    /// Where the blank line ending the head starts (reading until it has come).
    private func readHead(_ socket: Socket, _ buffered: inout [UInt8]) -> Int? {
        while true {
            if let end = HTTPRequestParser.find([13, 10, 13, 10], in: buffered[...]) { return end }
            guard buffered.count < Self.maxHead, readMore(socket, &buffered) else { return nil }
        }
    }

    private func readMore(_ socket: Socket, _ buffered: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 8192)
        guard let count = try? socket.read(into: &chunk), count > 0 else { return false }
        buffered += chunk[..<count]
        return true
    }

    // MARK: - Connecting

    /// Connects to the first of `addresses` (all checked by the rule) that answers.
    private static func connect(_ addresses: [IPAddress], port: Int) throws -> Socket {
        var lastError: Error = SystemError(errno: EHOSTUNREACH, call: "connect")
        for address in addresses {
            do {
                return try Socket.connect(to: address, port: port, timeout: connectTimeout)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    // MARK: - Relaying

    /// Copies bytes both ways until both sides have ended, either fails, or `stopped` says so (the
    /// call ended: checked at every wake, and at least every second); returns the bytes sent client → upstream and back. The
    /// client is a plain socket; the upstream may be TLS, whose reads drain what the TLS layer
    /// holds before polling again. Both sockets are non-blocking, so a peer that stops reading
    /// holds up its own direction only, and a descriptor with nothing wanted of it is left out of
    /// `poll` (a fully closed one would report POLLHUP at once, forever: a spinning core).
    static func relay(_ client: Int32, _ upstream: Upstream, until stopped: () -> Bool) -> (up: Int, down: Int) {
        for fd in [client, upstream.fd] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        var buffers = [[UInt8]](repeating: [UInt8](repeating: 0, count: 65536), count: 2)
        // Side 0 is the client, side 1 the upstream; pending[i] bytes read from side i.
        var pending = [0, 0], offset = [0, 0], ended = [false, false], moved = [0, 0]
        var upstreamMayHoldMore = false
        func read(_ side: Int) -> TLSConnection.Read {
            side == 1 ? upstream.read(into: &buffers[1]) : Upstream.plainRead(client, into: &buffers[0])
        }
        func write(_ side: Int, from: Int) -> Int? {
            side == 1 ? upstream.write(buffers[from], offset: offset[from], end: pending[from])
                : Upstream.plainWrite(client, buffers[from], offset: offset[from], end: pending[from])
        }
        while !(ended[0] && ended[1] && pending[0] == 0 && pending[1] == 0) {
            var entries = (0..<2).map { side -> pollfd in
                var events: Int32 = 0
                if !ended[side] && pending[side] == 0 { events |= Int32(POLLIN) }
                if pending[1 - side] > offset[1 - side] { events |= Int32(POLLOUT) }
                return pollfd(fd: events == 0 ? -1 : (side == 0 ? client : upstream.fd), events: Int16(events), revents: 0)
            }
            let ready = poll(&entries, 2, upstreamMayHoldMore ? 0 : 1000)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if stopped() { break }
            if upstreamMayHoldMore && !ended[1] && pending[1] == 0 { entries[1].revents |= Int16(POLLIN) }
            upstreamMayHoldMore = false
            for side in 0..<2 {
                let revents = Int32(entries[side].revents)
                let from = 1 - side
                if revents & Int32(POLLOUT | POLLERR | POLLHUP) != 0, pending[from] > offset[from] {
                    guard let written = write(side, from: from) else { return (moved[0], moved[1]) }
                    offset[from] += written
                    moved[from] += written
                    if offset[from] == pending[from] {
                        (offset[from], pending[from]) = (0, 0)
                        if ended[from] { side == 1 ? upstream.shutdownWrite() : Upstream.plainShutdownWrite(client) }
                    }
                }
                if revents & Int32(POLLIN | POLLHUP | POLLERR) != 0, !ended[side], pending[side] == 0 {
                    switch read(side) {
                    case .bytes(let count):
                        pending[side] = count
                        if side == 1, upstream.isTLS { upstreamMayHoldMore = true }
                    case .wouldBlock:
                        continue
                    case .closed:
                        ended[side] = true
                        side == 1 ? Upstream.plainShutdownWrite(client) : upstream.shutdownWrite()
                    }
                }
            }
        }
        return (moved[0], moved[1])
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
