import DroverCore

/// What `drover api` counts for `/metrics`. Routes are labelled by their template
/// (`/v1/sessions/{id}/events`), never by ids, so the label set stays small.
public struct APIMetrics: Sendable {
    public let registry = MetricsRegistry()
    let requests: Counter
    let seconds: Histogram

    public init() {
        requests = registry.counter("drover_api_requests_total", "Requests answered, by method, route template and status.")
        seconds = registry.histogram("drover_api_request_seconds", "Time to answer a request (streams: to their start), by route template.")
    }

    /// Methods that become labels; any other token a client sends is `other`.
    static let methods: Set = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    /// The labels of a request. Only a request that reached a route (authenticated, and answered
    /// other than 401, 404 or 405) is labelled with its template; every other one is `other`,
    /// so no client, with or without a key, can grow the label set.
    static func labels(method: String, path: String, status: Int, authenticated: Bool) -> (method: String, route: String) {
        let matched = authenticated && ![401, 404, 405].contains(status)
        return (methods.contains(method) ? method : "other", matched ? route(path) : "other")
    }

    /// `/v1/sessions/sesn_…/events` → `/v1/sessions/{id}/events`; unknown paths are `other`.
    static func route(_ path: String) -> String {
        let segments = path.prefix { $0 != "?" }.split(separator: "/").map(String.init)
        guard segments.first == "v1", (2...6).contains(segments.count) else { return "other" }
        let known: Set = ["agents", "environments", "sessions", "vaults", "fleet", "me"]
        guard known.contains(segments[1]) else { return "other" }
        let named: Set = ["events", "stream", "archive", "versions", "credentials", "resources"]
        let fleet: Set = ["leases", "harnesses", "pools", "queue", "queue_history"]
        return "/" + segments.enumerated().map { index, segment in
            if segments[1] == "fleet" && index == 2 { return fleet.contains(segment) ? segment : "other" }
            return index < 2 || named.contains(segment) ? segment : "{id}"
        }.joined(separator: "/")
    }
}
