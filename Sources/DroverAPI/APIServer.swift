import DroverCore
import DroverIO
import Foundation

/// What a handler answers: a whole response, or an event stream the connection then serves.
public enum APIResponse: Sendable {
    /// JSON text, as a typed resource or `JSONValue` wrote it.
    case json(status: Int, body: String, headers: [(String, String)])
    /// Bytes as they are (the console's static files).
    case raw(status: Int, contentType: String, body: [UInt8], headers: [(String, String)])
    case stream(EventStreamHub.Subscriber, headers: [(String, String)])
}

/// `drover api`'s HTTP: the project's one `HTTPServer` (an event loop owning every connection and
/// stream), with the API's answers, its event streams (an `EventStreamHub` subscriber is the
/// stream's source) and its goodbye to streams when it drains (an `error` event saying to
/// reconnect with `Last-Event-ID`).
public final class APIServer: Sendable {
    public typealias Config = HTTPServer.Config

    let server: HTTPServer

    /// `loop`: shared with the daemon's Postgres connections (`EventLoop.shared()`), so a request and
    /// its statements run on one thread; nil: a loop of the server's own.
    public init(config: Config, listener: Listener, hub: EventStreamHub, log: Log, loop: EventLoop? = nil,
                handler: @escaping @Sendable (HTTPServerRequest, String) async -> APIResponse) throws {
        var config = config
        config.streamGoodbye = {
            let error = APIError(529, "overloaded_error", "this server is shutting down; reconnect with Last-Event-ID")
            return Array("event: error\ndata: \(error.json(requestID: HTTPServer.requestID()).text)\n\n".utf8)
        }
        server = try HTTPServer(config: config, listener: listener, name: "drover.api", log: log, loop: loop) { request, requestID in
            switch await handler(request, requestID) {
            case .json(let status, let body, let headers): .whole(status: status, contentType: "application/json", body: Array(body.utf8), headers: headers)
            case .raw(let status, let contentType, let body, let headers): .whole(status: status, contentType: contentType, body: body, headers: headers)
            case .stream(let subscriber, let headers): .stream(contentType: "text/event-stream", headers: headers, source: SubscriberStream(subscriber, hub: hub))
            }
        }
    }

    public func start() { server.start() }

    /// Stops accepting; requests in flight finish; streams end at once with a final `error` event.
    public func drain(deadline: Double) async { await server.drain(deadline: deadline) }

    public var connectionCount: Int { server.connectionCount }
}

/// An event stream's subscriber as the body of its response: its messages' SSE bytes.
private final class SubscriberStream: HTTPStreamSource {
    let subscriber: EventStreamHub.Subscriber
    let hub: EventStreamHub

    init(_ subscriber: EventStreamHub.Subscriber, hub: EventStreamHub) {
        self.subscriber = subscriber
        self.hub = hub
    }

    func whenReady(_ wake: @escaping @Sendable () -> Void) { subscriber.whenReady(wake) }

    func take() -> HTTPStreamTake {
        switch subscriber.take() {
        case .nothing: .nothing
        case .overflowed: .overflowed(why: "session \(subscriber.session)")
        case .messages(let messages): .bytes(messages.flatMap(\.sse))
        // The session was deleted: its last event, then the end of the stream.
        case .ended(let messages): .ended(messages.flatMap(\.sse))
        }
    }

    func cancel() { hub.unsubscribe(subscriber) }
}
