import DroverCore
import Foundation

/// A daemon's operations endpoint: `/metrics` (Prometheus text), `/healthz` (the process serves)
/// and `/readyz` (it is ready for work: 503 while starting or draining). With `details`, `/readyz`
/// answers a JSON object instead: `{"ready": …}` plus what the daemon reports (e.g. a pool's
/// enforcement of limits), so an operator sees why as well as whether.
public final class OpsEndpoint: Sendable {
    private let server: HTTPServer

    public init(
        host: String, port: UInt16, metrics: MetricsRegistry, ready: @escaping @Sendable () -> Bool,
        details: (@Sendable () -> [String: JSONValue])? = nil
    ) throws {
        server = try HTTPServer(host: host, port: port)
        server.start { request, socket in
            switch (request.method, request.path) {
            case ("GET", "/metrics"):
                HTTPServer.respond(socket, status: 200, contentType: "text/plain; version=0.0.4", body: Array(metrics.render().utf8))
            case ("GET", "/healthz"):
                HTTPServer.respond(socket, status: 200, contentType: "text/plain", body: Array("ok\n".utf8))
            case ("GET", "/readyz"):
                let isReady = ready()
                if let details {
                    var body = details()
                    body["ready"] = .bool(isReady)
                    HTTPServer.respond(
                        socket, status: isReady ? 200 : 503, contentType: "application/json", body: Array((JSONValue.object(body).text + "\n").utf8))
                } else {
                    HTTPServer.respond(socket, status: isReady ? 200 : 503, contentType: "text/plain", body: Array((isReady ? "ready\n" : "not ready\n").utf8))
                }
            default:
                HTTPServer.respond(socket, status: 404, contentType: "text/plain", body: Array("not found\n".utf8))
            }
        }
    }

    public var address: String { server.address }

    public func stop() { server.stop() }
}
