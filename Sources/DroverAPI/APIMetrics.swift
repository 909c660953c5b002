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

    /// `/v1/sessions/sesn_…/events` → `/v1/sessions/{id}/events`; unknown paths are `other`.
    static func route(_ path: String) -> String {
        let segments = path.prefix { $0 != "?" }.split(separator: "/").map(String.init)
        guard segments.first == "v1", segments.count >= 2 else { return "other" }
        let known: Set = ["agents", "environments", "sessions", "vaults", "fleet", "me"]
        guard known.contains(segments[1]) else { return "other" }
        let named: Set = ["events", "stream", "archive", "versions", "credentials", "resources"]
        return "/" + segments.enumerated().map { index, segment in
            index < 2 || named.contains(segment) || (segments[1] == "fleet" && index == 2) ? segment : "{id}"
        }.joined(separator: "/")
    }
}
