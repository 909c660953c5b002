import DroverIO
import Foundation

/// A test rig: an HTTP/1.1 server whose handler writes to the connection's socket itself, on a
/// thread of its own (endless bodies, stalls, raw bytes: what a hostile or broken peer does). One
/// request per connection (`connection: close`), at most `maxConnections` at once (more get 503),
/// each request whole within `requestDeadline` seconds (slower ones get 408), a refusal answered
/// with its status. The handler, given to `start`, gets the socket so that it can stream (SSE)
/// as well as answer with `respond`.
public final class SocketHTTPServer: Sendable {
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
        try? socket.send(bytes: HTTPResponse.bytes(status: status, contentType: contentType, body: body, headers: headers, close: true))
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
