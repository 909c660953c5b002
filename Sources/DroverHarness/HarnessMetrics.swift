import DroverCore

/// What a harness counts for `/metrics`.
struct HarnessMetrics: Sendable {
    let registry = MetricsRegistry()
    let claimed: Counter
    let released: Counter
    let leasesLost: Counter
    let heartbeats: Counter
    let modelRequests: Counter
    let tokens: Counter
    let timeToFirstToken: Histogram
    let toolCalls: Counter
    let toolSeconds: Histogram
    let logEventsRead: Counter
    let rescued: Counter

    init() {
        claimed = registry.counter("drover_sessions_claimed_total", "Sessions claimed.")
        released = registry.counter("drover_sessions_released_total", "Leases released, by how the session ended (end_turn, interrupted, error, max_turns, budget_reached, retries_exhausted, handed_off).")
        leasesLost = registry.counter("drover_leases_lost_total", "Leases lost (fenced or expired locally).")
        heartbeats = registry.counter("drover_lease_heartbeats_total", "Lease heartbeats, by outcome (ok, failed).")
        modelRequests = registry.counter("drover_model_requests_total", "Model requests, by outcome (ok or an error code).")
        tokens = registry.counter("drover_model_tokens_total", "Model tokens, by kind (input, output).")
        timeToFirstToken = registry.histogram("drover_time_to_first_token_seconds", "From sending a model request to its first token.")
        toolCalls = registry.counter("drover_tool_calls_total", "Tool calls, by tool and outcome (ok, is_error).")
        toolSeconds = registry.histogram("drover_tool_call_seconds", "Tool call duration in seconds, by tool.")
        rescued = registry.counter("drover_leases_rescued_total", "Leases of dead harnesses this harness cut short (their liveness lock was free).")
        logEventsRead = registry.counter("drover_log_events_read_total", "Log events read by session runners (each is read once per lease).")
    }
}
