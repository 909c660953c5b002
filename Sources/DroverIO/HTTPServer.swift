import CDroverSys
import DroverCore
import Foundation
import Synchronization

/// What a handler answers: a whole response, or a streamed one the connection then serves.
public enum HTTPAnswer: Sendable {
    case whole(status: Int, contentType: String, body: [UInt8], headers: [(String, String)])
    /// A 200 whose close-delimited body comes from `source` (server-sent events).
    case stream(contentType: String, headers: [(String, String)], source: any HTTPStreamSource)

    public static func json(_ status: Int, _ body: JSONValue, headers: [(String, String)] = []) -> HTTPAnswer {
        .whole(status: status, contentType: "application/json", body: Array(body.text.utf8), headers: headers)
    }

    public static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8") -> HTTPAnswer {
        .whole(status: status, contentType: contentType, body: Array(text.utf8), headers: [])
    }
}

/// The project's one HTTP/1.1 server, on one event loop (epoll): every connection and every
/// stream is a non-blocking socket the loop owns, not a thread. It serves `drover api`, every
/// daemon's operations endpoint and the scripted model. Keep-alive, strict incremental parsing
/// (`HTTPRequestParser`), a deadline for a request to arrive whole, an idle timeout, a cap on
/// connections and a share of it per client address, `Expect: 100-continue`, lingering closes
/// after refusals, and streamed bodies with bounded buffers. Handlers run as tasks; their answers
/// come back to the loop with `execute`.
public final class HTTPServer: Sendable {
    public struct Config: Sendable {
        public var maxConnections = 1024
        /// Connections one client address may hold, so that one client cannot take every place.
        public var maxConnectionsPerClient = 256
        /// Seconds a request has, from its first byte, to arrive whole (slow clients are cut off).
        public var requestDeadline: Double = 10
        /// Seconds an idle keep-alive connection stays open.
        public var idleTimeout: Double = 60
        /// Seconds of quiet after which a stream is sent `streamPing`.
        public var pingInterval: Double = 15
        /// What a quiet stream is sent (an SSE `ping` event by default); nil: nothing.
        public var streamPing: [UInt8]? = Array("event: ping\ndata: {\"type\": \"ping\"}\n\n".utf8)
        /// What a stream is sent when the server drains, before it closes; nil: nothing.
        public var streamGoodbye: (@Sendable () -> [UInt8])?
        public var limits = HTTPRequestParser.Limits()
        public init() {}
    }

    let config: Config
    public let listener: Listener
    let log: Log
    let handler: Handler
    let loop: EventLoop
    /// Whether the server started its loop and ends it (false: the caller's, shared).
    let ownsLoop: Bool
    let name: String

    /// Where requests are answered: as tasks (the API's handlers, which await the database), on
    /// the loop itself (an operations endpoint: quick, and answering while the daemon's tasks are
    /// busy), or each on a thread of its own (the scripted model, a test rig whose pauses are sleeps).
    enum Handler: Sendable {
        case tasks(@Sendable (HTTPServerRequest, String) async -> HTTPAnswer)
        case onLoop(@Sendable (HTTPServerRequest, String) -> HTTPAnswer)
        case threads(@Sendable (HTTPServerRequest, String) -> HTTPAnswer)
    }
    /// Loop-confined: the connections and the per-client counts.
    private let table: ConnectionTable
    private let counts = Mutex((connections: 0, inFlight: 0, draining: false, started: false))
    /// Streams whose source has something (by descriptor), gathered from whatever feeds them and
    /// pumped in one pass of the loop: a thousand streams of one event cost one wake-up.
    private let readyStreams = Mutex<Set<Int32>>([])

    /// `handler` gets each request and its id (`request-id`, on every answer), as a task that
    /// prefers the server's loop as its executor. `loop`: a loop the caller started and owns,
    /// shared with what the handlers await (the daemon's Postgres connections); nil: a loop of
    /// the server's own.
    public convenience init(config: Config = Config(), listener: Listener, name: String, log: Log, loop: EventLoop? = nil,
                handler: @escaping @Sendable (HTTPServerRequest, String) async -> HTTPAnswer) throws {
        try self.init(config: config, listener: listener, name: name, log: log, loop: loop, handler: .tasks(handler))
    }

    /// Binds `host:port` now (so the port is known); serves from `start`.
    public convenience init(host: String, port: UInt16, config: Config = Config(), name: String, log: Log,
                            handler: @escaping @Sendable (HTTPServerRequest, String) async -> HTTPAnswer) throws {
        try self.init(config: config, listener: try Listener(host: host, port: port), name: name, log: log, handler: .tasks(handler))
    }

    /// As above, with each request answered on the loop: `quickHandler` must not block.
    public convenience init(host: String, port: UInt16, config: Config = Config(), name: String, log: Log,
                            quickHandler: @escaping @Sendable (HTTPServerRequest, String) -> HTTPAnswer) throws {
        try self.init(config: config, listener: try Listener(host: host, port: port), name: name, log: log, handler: .onLoop(quickHandler))
    }

    /// As above, with each request answered on a thread of its own, which may block (sleep).
    public convenience init(host: String, port: UInt16, config: Config = Config(), name: String, log: Log,
                            blockingHandler: @escaping @Sendable (HTTPServerRequest, String) -> HTTPAnswer) throws {
        try self.init(config: config, listener: try Listener(host: host, port: port), name: name, log: log, handler: .threads(blockingHandler))
    }

    init(config: Config, listener: Listener, name: String, log: Log, loop: EventLoop? = nil, handler: Handler) throws {
        self.config = config
        self.listener = listener
        self.log = log
        self.handler = handler
        self.name = name
        ownsLoop = loop == nil
        self.loop = try loop ?? EventLoop(name: name)
        table = ConnectionTable()
    }

    public var address: String { "\(listener.host):\(listener.port)" }

    public func start() {
        counts.withLock { $0.started = true }
        if ownsLoop { loop.start() }
        loop.execute { [self] in
            _ = drover_set_nonblocking(listener.fd)
            loop.register(listener.fd, .readable) { [self] _ in acceptAll() }
            loop.every(.milliseconds(250)) { [self] in checkDeadlines() }
        }
    }

    /// Stops accepting; requests in flight finish; streams end at once with a final `error` event.
    public func drain(deadline: Double) async {
        counts.withLock { $0.draining = true }
        loop.execute { [self] in
            loop.unregister(listener.fd)
            listener.close()
            for connection in table.connections.values { connection.drain() }
        }
        let end = ContinuousClock.now + .seconds(deadline)
        while counts.withLock({ $0.inFlight }) > 0 && ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
        loop.execute { [self] in
            for connection in Array(table.connections.values) { connection.close() }
        }
        if ownsLoop { await loop.stop() }
    }

    /// Stops at once: the listener and every connection are closed on the loop before this
    /// returns (so the port can be bound again at once), and the loop then ends.
    public func stop() {
        let wasStarted = counts.withLock { state -> Bool in
            defer { state.draining = true }
            return state.started && !state.draining
        }
        guard wasStarted else {
            if !counts.withLock({ $0.started }) { listener.close() }
            return
        }
        let closed = DispatchSemaphore(value: 0)
        let close: @Sendable () -> Void = { [self] in
            loop.unregister(listener.fd)
            listener.close()
            for connection in Array(table.connections.values) { connection.close() }
            closed.signal()
        }
        if loop.inLoop { close() } else { loop.execute(close) }
        // Never the loop's own thread waiting on itself: it closed them just now.
        if !loop.inLoop { closed.wait() }
        let eventLoop = loop
        if ownsLoop { Task { await eventLoop.stop() } }
    }

    public var connectionCount: Int { counts.withLock { $0.connections } }

    var draining: Bool { counts.withLock { $0.draining } }

    /// The kernel send buffer of a stream's socket.
    static let streamSocketBuffer = 256 * 1024
    /// Bytes a connection may have waiting for the kernel before a stream stops taking events
    /// (then its subscriber's buffer fills, and a client that stays stalled is cut off).
    static let outboundLimit = 256 * 1024

    public static func requestID() -> String { "req_" + String(UInt64.random(in: 0...UInt64.max), radix: 16) }

    // MARK: - On the loop

    private func acceptAll() {
        while true {
            let fd = drover_accept_nonblock(listener.fd)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // EAGAIN (none left), or EMFILE: the next readiness tries again
            }
            let socket = Socket(fd: fd)
            let client = socket.peerAddress
            guard table.connections.count < config.maxConnections, table.perClient[client, default: 0] < config.maxConnectionsPerClient else {
                _ = HTTPResponse.error(APIError(503, "overloaded_error", "too many connections"), requestID: Self.requestID(), close: true)
                    .withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                socket.close()
                continue
            }
            let connection = Connection(server: self, socket: socket, client: client)
            table.connections[fd] = connection
            table.perClient[client, default: 0] += 1
            counts.withLock { $0.connections = table.connections.count }
            loop.register(fd, [.readable, .peerClosed]) { events in connection.handle(events) }
        }
    }

    fileprivate func forget(_ connection: Connection) {
        table.connections[connection.socket.fd] = nil
        table.perClient[connection.client, default: 1] -= 1
        if table.perClient[connection.client] == 0 { table.perClient[connection.client] = nil }
        counts.withLock { $0.connections = table.connections.count }
    }

    private func checkDeadlines() {
        let now = ContinuousClock.now
        for connection in Array(table.connections.values) { connection.tick(now) }
    }

    /// A stream's source has something (called from whatever feeds it).
    fileprivate func streamReady(_ fd: Int32) {
        let first = readyStreams.withLock { ready -> Bool in
            ready.insert(fd)
            return ready.count == 1
        }
        if first { loop.execute { [self] in pumpReadyStreams() } }
    }

    private func pumpReadyStreams() {
        let ready = readyStreams.withLock { ready -> Set<Int32> in
            defer { ready = [] }
            return ready
        }
        // A descriptor closed and reused meanwhile names a connection that is not streaming: its pump does nothing.
        for fd in ready { table.connections[fd]?.pump() }
    }

    fileprivate func began() { counts.withLock { $0.inFlight += 1 } }
    fileprivate func ended() { counts.withLock { $0.inFlight -= 1 } }
}

/// The server's connections by descriptor, and how many each client address holds: loop-confined.
private final class ConnectionTable: @unchecked Sendable {
    var connections: [Int32: Connection] = [:]
    var perClient: [String: Int] = [:]
}

/// One HTTP connection, confined to the server's loop: its parser, what waits to be written, and
/// where it is in its life.
private final class Connection: @unchecked Sendable {
    enum Phase {
        /// Reading a request (or idle between requests).
        case reading
        /// A handler is answering; nothing more is read until it has.
        case handling
        case streaming(any HTTPStreamSource)
        /// A refusal was written; what still arrives is read and dropped until `until`, so that
        /// closing with unread data does not reset the connection before the client reads it.
        case lingering(until: ContinuousClock.Instant, dropped: Int)
        case closed
    }

    unowned let server: HTTPServer
    let socket: Socket
    let client: String
    var parser: HTTPRequestParser
    var phase = Phase.reading
    var outbound = OutboundBuffer()
    var closeAfterFlush = false
    var lingerAfterFlush = false
    var keepAlive = true
    var continued = false
    var requestStarted: ContinuousClock.Instant?
    var idleSince = ContinuousClock.now
    var lastWrite = ContinuousClock.now
    var watchingWritable = false

    init(server: HTTPServer, socket: Socket, client: String) {
        self.server = server
        self.socket = socket
        self.client = client
        parser = HTTPRequestParser(limits: server.config.limits)
    }

    var loop: EventLoop { server.loop }
    var isClosed: Bool { if case .closed = phase { true } else { false } }

    func handle(_ events: EventLoop.Events) {
        if events.contains(.writable) { flush() }
        if isClosed { return }
        if events.wantsRead { readAll() }
    }

    private func readAll() {
        let open = socket.readAvailable(while: { !isClosed }) { chunk in
            switch phase {
            case .reading:
                if requestStarted == nil { requestStarted = .now }
                parser.feed(chunk)
                advance()
            case .lingering(let until, let dropped):
                phase = .lingering(until: until, dropped: dropped + chunk.count)
                if dropped + chunk.count >= 1 << 20 { close() }
            case .handling, .streaming, .closed:
                // Reading stops while a handler answers; a stream's client has nothing to say.
                break
            }
        }
        // The client went: whatever it was doing ends (a handler's answer is dropped).
        if !open { close() }
    }

    /// Parses what has arrived: answers a refusal, starts a handler, or waits for more.
    private func advance() {
        guard case .reading = phase else { return }
        switch parser.next() {
        case .refused(let refusal):
            refuse(APIError(refusal.status, "invalid_request_error", refusal.message))
        case .request(let request):
            requestStarted = parser.buffered > 0 ? .now : nil
            continued = false
            keepAlive = request.version == "HTTP/1.1" && !HTTPRequestParser.connection(request.headers["connection"], contains: "close")
                && !server.draining
            dispatch(request)
        case .needMore:
            // A client that asked to be told before it sends its body is told (its size was
            // checked with the head: an oversized one has had its 413 already).
            if !continued, let head = parser.awaitingBody, head.version == "HTTP/1.1", head.headers["expect"]?.lowercased() == "100-continue" {
                continued = true
                write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            }
        }
    }

    private func dispatch(_ request: HTTPServerRequest) {
        phase = .handling
        loop.modify(socket.fd, [.peerClosed])
        let requestID = HTTPServer.requestID()
        let loop = self.loop
        server.began()
        switch server.handler {
        case .tasks(let handler):
            // On the loop (its executor): the handler's awaits that have no executor of their
            // own, its database statements among them when they share the loop, cost no hand-off.
            Task(executorPreference: loop) {
                let response = await handler(request, requestID)
                let answer: @Sendable () -> Void = { [self] in
                    server.ended()
                    respond(response, requestID: requestID)
                }
                if loop.inLoop { answer() } else { loop.execute(answer) }
            }
        case .onLoop(let handler):
            let response = handler(request, requestID)
            server.ended()
            respond(response, requestID: requestID)
        case .threads(let handler):
            let thread = Thread {
                let response = handler(request, requestID)
                loop.execute { [self] in
                    server.ended()
                    respond(response, requestID: requestID)
                }
            }
            thread.name = server.name + ".request"
            thread.start()
        }
    }

    private func respond(_ answer: HTTPAnswer, requestID: String) {
        guard case .handling = phase else {
            if case .stream(_, _, let source) = answer { source.cancel() }
            return
        }
        switch answer {
        case .whole(let status, let contentType, let body, let headers):
            finish(HTTPResponse.bytes(status: status, contentType: contentType, body: body, headers: headers + [("request-id", requestID)],
                                      close: !keepAlive))
        case .stream(let contentType, let headers, let source):
            // What a slow client can hold up in the kernel is bounded too, not only the buffer.
            socket.setSendBuffer(HTTPServer.streamSocketBuffer)
            phase = .streaming(source)
            loop.modify(socket.fd, [.readable, .peerClosed])
            write(HTTPResponse.streamHead(contentType: contentType, headers: [("request-id", requestID)] + headers))
            let (server, fd) = (self.server, socket.fd)
            source.whenReady { server.streamReady(fd) }
            if server.draining { drain() } else { pump() }
        }
    }

    /// A whole answer: then the next request (keep-alive, perhaps already buffered), or the end.
    private func finish(_ bytes: [UInt8]) {
        write(bytes)
        guard !isClosed else { return }
        if keepAlive && !server.draining {
            phase = .reading
            idleSince = .now
            loop.modify(socket.fd, watchingWritable ? [.readable, .peerClosed, .writable] : [.readable, .peerClosed])
            advance()
        } else {
            closeAfterFlush = true
            if outbound.isEmpty { close() }
        }
    }

    private func refuse(_ error: APIError) {
        write(HTTPResponse.error(error, requestID: HTTPServer.requestID(), close: true))
        lingerAfterFlush = true
        if outbound.isEmpty { linger() }
    }

    /// Takes what the stream's source holds while the client keeps up.
    func pump() {
        guard case .streaming(let source) = phase else { return }
        while outbound.pending < HTTPServer.outboundLimit {
            switch source.take() {
            case .nothing:
                return
            case .overflowed(let why):
                server.log.info("stream cut off: the client read too slowly", ("stream", .string(why)))
                close()
                return
            case .bytes(let bytes):
                outbound.append(bytes)
                flush()
                if isClosed { return }
            case .ended(let bytes):
                // The source's last bytes, then the end of the stream.
                outbound.append(bytes)
                closeAfterFlush = true
                flush()
                if !isClosed && outbound.isEmpty { close() }
                return
            }
        }
    }

    /// The server drains: a stream gets its goodbye (an API client reconnects, to another
    /// replica, from where it was), an idle connection closes, a request in flight finishes first.
    func drain() {
        switch phase {
        case .streaming:
            if let goodbye = server.config.streamGoodbye { write(goodbye()) }
            closeAfterFlush = true
            if outbound.isEmpty { close() }
        case .reading:
            if requestStarted == nil { close() }
        case .handling:
            keepAlive = false
        case .lingering, .closed:
            break
        }
    }

    func tick(_ now: ContinuousClock.Instant) {
        switch phase {
        case .reading:
            if let started = requestStarted, now - started > .seconds(server.config.requestDeadline) {
                write(HTTPResponse.error(APIError(408, "timeout_error", "the request did not arrive within \(Int(server.config.requestDeadline)) s"),
                                         requestID: HTTPServer.requestID(), close: true))
                closeAfterFlush = true
                if outbound.isEmpty { close() }
            } else if requestStarted == nil && now - idleSince > .seconds(server.config.idleTimeout) {
                close()
            }
        case .streaming:
            if let ping = server.config.streamPing, now - lastWrite > .seconds(server.config.pingInterval) && outbound.isEmpty {
                write(ping)
            }
        case .lingering(let until, _):
            if now > until { close() }
        case .handling, .closed:
            break
        }
    }

    // MARK: - Writing

    private func write(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        outbound.append(bytes)
        flush()
    }

    private func flush() {
        switch outbound.flush(to: socket.fd, wrote: { lastWrite = .now }) {
        case .wouldBlock:
            watch(writable: true)
            return
        case .failed:
            close()
            return
        case .done:
            break
        }
        watch(writable: false)
        if closeAfterFlush {
            close()
        } else if lingerAfterFlush {
            linger()
        } else if case .streaming = phase {
            pump()
        }
    }

    private func watch(writable: Bool) {
        guard writable != watchingWritable, !isClosed else { return }
        watchingWritable = writable
        var events: EventLoop.Events = [.peerClosed]
        switch phase {
        case .reading, .streaming, .lingering: events.insert(.readable)
        case .handling, .closed: break
        }
        if writable { events.insert(.writable) }
        loop.modify(socket.fd, events)
    }

    private func linger() {
        lingerAfterFlush = false
        Glibc.shutdown(socket.fd, Int32(SHUT_WR))
        phase = .lingering(until: .now + .seconds(2), dropped: 0)
        loop.modify(socket.fd, [.readable, .peerClosed])
    }

    func close() {
        guard !isClosed else { return }
        if case .streaming(let source) = phase { source.cancel() }
        phase = .closed
        loop.unregister(socket.fd)
        server.forget(self)
        socket.close()
    }
}
