import DroverCore
import DroverIO
import Foundation
import Synchronization

/// What a handler answers: a whole response, or an event stream the connection then serves.
public enum APIResponse: Sendable {
    case json(status: Int, body: JSONValue, headers: [(String, String)])
    /// Bytes as they are (the console's static files).
    case raw(status: Int, contentType: String, body: [UInt8], headers: [(String, String)])
    case stream(EventStreamHub.Subscriber, headers: [(String, String)])
}

/// HTTP/1.1 for `drover api`: keep-alive, strict parsing (`HTTPRequestParser`), deadlines for slow
/// clients, a cap on connections, and server-sent event streams. Each connection has a thread of
/// its own (bounded by the cap); handlers run as tasks, the thread waits for their answer.
public final class APIServer: Sendable {
    public struct Config: Sendable {
        public var maxConnections = 1024
        /// Connections one client address may hold, so that one client cannot take every place.
        public var maxConnectionsPerClient = 256
        /// Seconds a request has, from its first byte, to arrive whole (slow clients are cut off).
        public var requestDeadline: Double = 10
        /// Seconds an idle keep-alive connection stays open.
        public var idleTimeout: Double = 60
        /// Seconds between `ping` events on a quiet stream.
        public var pingInterval: Double = 15
        public var limits = HTTPRequestParser.Limits()
        public init() {}
    }

    let config: Config
    let acceptor: ConnectionAcceptor
    let log: Log
    let handler: @Sendable (HTTPServerRequest, String) async -> APIResponse
    let hub: EventStreamHub
    private struct State {
        var inFlight = 0
        var draining = false
    }
    private let state = Mutex(State())

    public init(config: Config, listener: Listener, hub: EventStreamHub, log: Log,
                handler: @escaping @Sendable (HTTPServerRequest, String) async -> APIResponse) {
        self.config = config
        acceptor = ConnectionAcceptor(
            listener: listener, name: "drover.api", maxConnections: config.maxConnections, maxPerClient: config.maxConnectionsPerClient)
        self.hub = hub
        self.log = log
        self.handler = handler
    }

    public func start() {
        acceptor.start(refuse: { socket in
            _ = try? socket.send(bytes: Self.errorResponse(
                APIError(503, "overloaded_error", "too many connections"), requestID: Self.requestID(), close: true))
        }, serve: { [self] socket in serve(socket) })
    }

    /// Stops accepting; requests in flight finish; streams end at once with a final `error` event.
    public func drain(deadline: Double) async {
        state.withLock { $0.draining = true }
        acceptor.stopAccepting()
        hub.wakeAll()
        let end = ContinuousClock.now + .seconds(deadline)
        while state.withLock({ $0.inFlight }) > 0 && ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
        acceptor.shutdownAll()
    }

    public var connectionCount: Int { acceptor.count }

    /// The kernel send buffer of a stream's socket.
    static let streamSocketBuffer = 256 * 1024

    static func requestID() -> String { "req_" + String(UInt64.random(in: 0...UInt64.max), radix: 16) }

    // MARK: - One connection

    private func serve(_ socket: Socket) {
        var parser = HTTPRequestParser(limits: config.limits)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        socket.setReadTimeout(1)
        socket.setSendTimeout(10)
        var requestStarted: ContinuousClock.Instant?
        var idleSince = ContinuousClock.now
        var continued = false
        while true {
            switch parser.next() {
            case .refused(let refusal):
                write(socket, Self.errorResponse(APIError(refusal.status, "invalid_request_error", refusal.message), requestID: Self.requestID(), close: true))
                socket.lingeringClose()
                return
            case .request(let request):
                requestStarted = parser.buffered > 0 ? .now : nil
                continued = false
                let keepAlive = request.version == "HTTP/1.1" && !HTTPRequestParser.connection(request.headers["connection"], contains: "close")
                    && !state.withLock({ $0.draining })
                guard answer(request, on: socket, keepAlive: keepAlive) && keepAlive else { return }
                idleSince = .now
                continue
            case .needMore:
                // A client that asked to be told before it sends its body is told (its size was
                // checked with the head: an oversized one has had its 413 already).
                if !continued, let head = parser.awaitingBody, head.version == "HTTP/1.1",
                    head.headers["expect"]?.lowercased() == "100-continue" {
                    continued = true
                    write(socket, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                }
            }
            let now = ContinuousClock.now
            if let started = requestStarted, now - started > .seconds(config.requestDeadline) {
                write(socket, Self.errorResponse(APIError(408, "timeout_error", "the request did not arrive within \(Int(config.requestDeadline)) s"),
                                                 requestID: Self.requestID(), close: true))
                return
            }
            if requestStarted == nil && now - idleSince > .seconds(config.idleTimeout) { return }
            if state.withLock({ $0.draining }) && requestStarted == nil { return }
            let count: Int
            switch socket.receive(into: &buffer) {
            case .timedOut: continue
            case .closed: return
            case .bytes(let received): count = received
            }
            if requestStarted == nil { requestStarted = .now }
            parser.feed(buffer[0..<count])
        }
    }

    /// Runs the handler and writes its answer; false when the connection must close.
    private func answer(_ request: HTTPServerRequest, on socket: Socket, keepAlive: Bool) -> Bool {
        let requestID = Self.requestID()
        state.withLock { $0.inFlight += 1 }
        defer { state.withLock { $0.inFlight -= 1 } }
        let done = DispatchSemaphore(value: 0)
        final class Box: Sendable { let response = Mutex<APIResponse?>(nil) }
        let box = Box()
        let handler = self.handler
        Task {
            let response = await handler(request, requestID)
            box.response.withLock { $0 = response }
            done.signal()
        }
        done.wait()
        guard let response = box.response.withLock({ $0 }) else { return false }
        switch response {
        case .json(let status, let body, let headers):
            var all = headers
            all.append(("request-id", requestID))
            return write(socket, HTTPServer.response(
                status: status, contentType: "application/json", body: Array(body.text.utf8), headers: all, close: !keepAlive))
        case .raw(let status, let contentType, let body, let headers):
            var all = headers
            all.append(("request-id", requestID))
            return write(socket, HTTPServer.response(status: status, contentType: contentType, body: body, headers: all, close: !keepAlive))
        case .stream(let subscriber, let headers):
            defer { hub.unsubscribe(subscriber) }
            var head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\nrequest-id: \(requestID)\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            guard write(socket, Array((head + "\r\n").utf8)) else { return false }
            // What a slow client can hold up in the kernel is bounded too, not only the buffer.
            socket.setSendBuffer(Self.streamSocketBuffer)
            subscriber.whenOverflowing { [log] in
                log.info("stream cut off: the client read too slowly", ("session", .string(subscriber.session)))
                socket.shutdown()
            }
            stream(subscriber, on: socket)
            return false
        }
    }

    /// Writes events as they come, pings when quiet; ends when the client goes, overflows, or
    /// the server drains.
    private func stream(_ subscriber: EventStreamHub.Subscriber, on socket: Socket) {
        defer {
            if state.withLock({ $0.draining }) {
                // A final event: the client reconnects (to another replica) from where it was.
                let error = APIError(529, "overloaded_error", "this server is shutting down; reconnect with Last-Event-ID")
                _ = write(socket, Array("event: error\ndata: \(error.json(requestID: Self.requestID()).text)\n\n".utf8))
            }
        }
        while !state.withLock({ $0.draining }) {
            switch subscriber.next(timeout: config.pingInterval) {
            case .overflowed:
                // Already shut down (the client is not reading, so no error event can reach it).
                return
            case .idle:
                // Woken by a drain: the final event follows (deferred), not a ping.
                if state.withLock({ $0.draining }) { return }
                guard write(socket, Array("event: ping\ndata: {\"type\": \"ping\"}\n\n".utf8)) else { return }
            case .messages(let messages):
                var text = ""
                for message in messages {
                    text += "event: \(message.type)\nid: \(message.id)\ndata: \(message.json)\n\n"
                }
                guard write(socket, Array(text.utf8)) else { return }
            }
        }
    }

    @discardableResult
    private func write(_ socket: Socket, _ bytes: [UInt8]) -> Bool {
        (try? socket.send(bytes: bytes)) != nil
    }

    /// An error answer; overload (503, 529) says when to come back, as the SDKs read it.
    static func errorResponse(_ error: APIError, requestID: String, close: Bool) -> [UInt8] {
        var headers = [("request-id", requestID), ("x-should-retry", error.shouldRetry ? "true" : "false")]
        if error.status == 503 || error.status == 529 { headers.append(("retry-after", "1")) }
        return HTTPServer.response(
            status: error.status, contentType: "application/json", body: Array(error.json(requestID: requestID).text.utf8), headers: headers,
            close: close)
    }
}
