import Foundation

/// A request read by `HTTPServer` or `HTTPRequestParser`.
public struct HTTPServerRequest: Sendable, Equatable {
    public var method: String
    /// The request target as sent (path and query).
    public var path: String
    /// Header names lower-cased; repeated headers joined with ", ".
    public var headers: [String: String]
    public var body: [UInt8]
    public var version = "HTTP/1.1"

    public init(method: String, path: String, headers: [String: String], body: [UInt8], version: String = "HTTP/1.1") {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.version = version
    }
}

/// A small HTTP/1.1 server for Drover's own endpoints (metrics, health, the scripted model): one
/// request per connection (`connection: close`), at most `maxConnections` at once (more get 503),
/// each request whole within `requestDeadline` seconds (slower ones get 408), a refusal answered
/// with its status. The handler, given to `start`, gets the socket so that it can stream (SSE)
/// as well as answer with `respond`.
public final class HTTPServer: Sendable {
    public let listener: Listener
    let acceptor: ConnectionAcceptor
    let requestDeadline: Double

    /// Binds now (so the port is known); serves from `start`.
    public init(host: String, port: UInt16, maxConnections: Int = 256, requestDeadline: Double = 10) throws {
        listener = try Listener(host: host, port: port)
        acceptor = ConnectionAcceptor(listener: listener, name: "drover.http", maxConnections: maxConnections)
        self.requestDeadline = requestDeadline
    }

    public var address: String { "\(listener.host):\(listener.port)" }

    /// Accepts connections and hands each request to `handler`, on the connection's thread.
    public func start(_ handler: @escaping @Sendable (HTTPServerRequest, Socket) -> Void) {
        acceptor.start(refuse: { socket in
            Self.respond(socket, status: 503, contentType: "text/plain; charset=utf-8", body: Array("too many connections\n".utf8))
        }, serve: { [requestDeadline] socket in
            switch Self.readRequest(socket, deadline: requestDeadline) {
            case .success(let request): handler(request, socket)
            case .failure(let refusal):
                Self.respond(socket, status: refusal.status, contentType: "text/plain; charset=utf-8", body: Array((refusal.message + "\n").utf8))
                socket.lingeringClose()
            case .none: break
            }
        })
    }

    public func stop() {
        acceptor.stopAccepting()
        acceptor.shutdownAll()
    }

    /// Connections being served.
    public var connectionCount: Int { acceptor.count }

    /// Writes a whole response; the connection closes after it.
    public static func respond(_ socket: Socket, status: Int, contentType: String, body: [UInt8], headers: [(String, String)] = []) {
        try? socket.send(bytes: response(status: status, contentType: contentType, body: body, headers: headers, close: true))
    }

    /// A whole response's bytes (shared with `drover api`, which keeps connections alive).
    public static func response(status: Int, contentType: String, body: [UInt8], headers: [(String, String)], close: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(reason(status))\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.count)\r\n"
        if close { head += "connection: close\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }

    /// Starts a streamed response; the caller then writes the body and the connection closes.
    public static func startStream(_ socket: Socket, contentType: String) -> Bool {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: \(contentType)\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
        return (try? socket.send(bytes: Array(head.utf8))) != nil
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        case 529: "Overloaded"
        default: status < 500 ? "Client Error" : "Server Error"
        }
    }

    /// Reads one request with `HTTPRequestParser` (bodies up to 64 MiB: model requests carry whole
    /// conversations) within `deadline` seconds; the refusal to answer, or nil when the connection
    /// ended first.
    static func readRequest(_ socket: Socket, deadline: Double) -> Result<HTTPServerRequest, HTTPRequestParser.Refusal>? {
        var limits = HTTPRequestParser.Limits()
        limits.body = 64 << 20
        var parser = HTTPRequestParser(limits: limits)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let end = ContinuousClock.now + .seconds(deadline)
        socket.setReadTimeout(min(1, deadline))
        socket.setSendTimeout(30)
        while true {
            switch parser.next() {
            case .request(let request):
                socket.setReadTimeout(nil)
                return .success(request)
            case .refused(let refusal): return .failure(refusal)
            case .needMore: break
            }
            guard ContinuousClock.now < end else {
                return .failure(HTTPRequestParser.Refusal(status: 408, message: "the request did not arrive within \(Int(deadline)) s"))
            }
            switch socket.receive(into: &buffer) {
            case .bytes(let count): parser.feed(buffer[0..<count])
            case .timedOut: continue
            case .closed: return nil
            }
        }
    }
}
