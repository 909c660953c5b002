import DroverCore
import Foundation

/// A daemon's operations endpoint: `/metrics` (Prometheus text), `/healthz` (the process serves)
/// and `/readyz` (it is ready for work: 503 while starting or draining). With `details`, `/readyz`
/// answers a JSON object instead: `{"ready": …}` plus what the daemon reports (e.g. a pool's
/// enforcement of limits), so an operator sees why as well as whether. Served by the project's
/// one `HTTPServer`, on a loop of its own.
public final class OpsEndpoint: Sendable {
    private let server: HTTPServer

    public init(
        host: String, port: UInt16, metrics: MetricsRegistry, ready: @escaping @Sendable () -> Bool,
        details: (@Sendable () -> [String: JSONValue])? = nil
    ) throws {
        // Answered on the loop (each answer is quick): /healthz answers while the daemon's tasks are busy.
        server = try HTTPServer(host: host, port: port, name: "drover.ops", log: Log(component: "ops", minimum: .warning), quickHandler: { request, _ in
            switch (request.method, request.path) {
            case ("GET", "/metrics"):
                return .text(200, metrics.render(), contentType: "text/plain; version=0.0.4")
            case ("GET", "/healthz"):
                return .text(200, "ok\n", contentType: "text/plain")
            case ("GET", "/readyz"):
                let isReady = ready()
                guard let details else { return .text(isReady ? 200 : 503, isReady ? "ready\n" : "not ready\n", contentType: "text/plain") }
                var body = details()
                body["ready"] = .bool(isReady)
                return .text(isReady ? 200 : 503, JSONValue.object(body).text + "\n", contentType: "application/json")
            default:
                return .text(404, "not found\n", contentType: "text/plain")
            }
        })
        server.start()
    }

    public var address: String { server.address }

    public func stop() { server.stop() }
}
