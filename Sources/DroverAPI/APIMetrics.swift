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

    /// The routes `APIRouter` serves, as templates: the only route labels there are.
    static let templates: Set<String> = [
        "/v1/me", "/v1/fleet/leases", "/v1/fleet/harnesses", "/v1/fleet/pools", "/v1/fleet/queue", "/v1/fleet/queue_history",
        "/v1/agents", "/v1/agents/{id}", "/v1/agents/{id}/archive", "/v1/agents/{id}/versions",
        "/v1/environments", "/v1/environments/{id}", "/v1/environments/{id}/archive",
        "/v1/sessions", "/v1/sessions/{id}", "/v1/sessions/{id}/archive", "/v1/sessions/{id}/resources", "/v1/sessions/{id}/resources/{id}",
        "/v1/sessions/{id}/events", "/v1/sessions/{id}/events/stream",
        "/v1/vaults", "/v1/vaults/{id}", "/v1/vaults/{id}/archive", "/v1/vaults/{id}/credentials", "/v1/vaults/{id}/credentials/{id}",
        "/v1/vaults/{id}/credentials/{id}/archive",
    ]

    /// The labels of a request: its method if a standard one, its route template if one of
    /// `templates` (a 404 for a missing session is still `/v1/sessions/{id}`), else `other`; an
    /// unauthenticated request's route is `other` too. No client, with a key or without, can
    /// grow the label set.
    static func labels(method: String, path: String, authenticated: Bool) -> (method: String, route: String) {
        let template = route(path)
        return (methods.contains(method) ? method : "other", authenticated && templates.contains(template) ? template : "other")
    }

    /// `/v1/sessions/sesn_…/events` → `/v1/sessions/{id}/events`; unknown paths are `other`.
    static func route(_ path: String) -> String {
        let segments = path.prefix { $0 != "?" }.split(separator: "/").map(String.init)
        guard segments.first == "v1", (2...6).contains(segments.count) else { return "other" }
        let named: Set = ["events", "stream", "archive", "versions", "credentials", "resources"]
        return "/" + segments.enumerated().map { index, segment in
            index < 2 || named.contains(segment) || (segments[1] == "fleet" && index == 2) ? segment : "{id}"
        }.joined(separator: "/")
    }
}
