import DroverCore
import Foundation

/// A daemon's operations endpoint: `/metrics` (Prometheus text), `/healthz` (the process serves)
/// and `/readyz` (it is ready for work: 503 while starting or draining).
public final class OpsEndpoint: Sendable {
    private let server: HTTPServer

    public init(host: String, port: UInt16, metrics: MetricsRegistry, ready: @escaping @Sendable () -> Bool) throws {
        server = try HTTPServer(host: host, port: port)
        server.start { request, socket in
            switch (request.method, request.path) {
            case ("GET", "/metrics"):
                HTTPServer.respond(socket, status: 200, contentType: "text/plain; version=0.0.4", body: Array(metrics.render().utf8))
            case ("GET", "/healthz"):
                HTTPServer.respond(socket, status: 200, contentType: "text/plain", body: Array("ok\n".utf8))
            case ("GET", "/readyz"):
                let isReady = ready()
                HTTPServer.respond(socket, status: isReady ? 200 : 503, contentType: "text/plain", body: Array((isReady ? "ready\n" : "not ready\n").utf8))
            default:
                HTTPServer.respond(socket, status: 404, contentType: "text/plain", body: Array("not found\n".utf8))
            }
        }
    }

    public var address: String { server.address }

    public func stop() { server.stop() }
}
