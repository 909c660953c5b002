import DroverCore

/// What `drover api` counts for `/metrics`. Routes are labelled by their template
/// (`/v1/sessions/{id}/events`), never by ids, so the label set stays small.
public struct APIMetrics: Sendable {
    public let registry = MetricsRegistry()
    let requests: Counter
    let seconds: Histogram
    /// Self-hosted work queues: polls (`claimed` or `empty`), items back in the queue
    /// (`unacknowledged` after a poll, `lease_expired`), and heartbeats (`extended`, `stopping`,
    /// `refused`: 412).
    let workPolls: Counter
    let workReclaims: Counter
    let workHeartbeats: Counter

    public init() {
        requests = registry.counter("drover_api_requests_total", "Requests answered, by method, route template and status.")
        seconds = registry.histogram("drover_api_request_seconds", "Time to answer a request (streams: to their start), by route template.")
        workPolls = registry.counter("drover_work_polls_total", "Work polls of self-hosted environments answered, by outcome (claimed, empty).")
        workReclaims = registry.counter(
            "drover_work_reclaims_total", "Work items put back in the queue, by kind (unacknowledged, lease_expired).")
        workHeartbeats = registry.counter("drover_work_heartbeats_total", "Work item heartbeats, by outcome (extended, stopping, refused).")
    }

    /// Methods that become labels; any other token a client sends is `other`.
    static let methods: Set = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    /// The labels of a request: its method if a standard one, its route template if one the router
    /// serves (`APIRouter.routes`; a 404 for a missing session is still `/v1/sessions/{id}`), else `other`; an
    /// unauthenticated request's route is `other` too. No client, with a key or without, can
    /// grow the label set.
    static func labels(method: String, path: String, authenticated: Bool) -> (method: String, route: String) {
        let template = route(path)
        return (methods.contains(method) ? method : "other", authenticated && APIRouter.routes[template] != nil ? template : "other")
    }

    /// `/v1/sessions/sesn_…/events` → `/v1/sessions/{id}/events`; unknown paths are `other`.
    /// The fixed segments of every route template (beyond `/v1/<resource>`): any other segment is an id.
    static let named: Set<String> = Set((Array(APIRouter.routes.keys) + Array(APIRouter.notServed.keys)).flatMap { template in
        template.split(separator: "/").dropFirst(2).map(String.init).filter { $0 != "{id}" }
    })

    static func route(_ path: String) -> String {
        let segments = path.prefix { $0 != "?" }.split(separator: "/").map(String.init)
        guard segments.first == "v1", (2...6).contains(segments.count) else { return "other" }
        return "/" + segments.enumerated().map { index, segment in
            index < 2 || named.contains(segment) || (segments[1] == "fleet" && index == 2) ? segment : "{id}"
        }.joined(separator: "/")
    }
}
