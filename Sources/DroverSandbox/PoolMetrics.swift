import DroverCore

/// What a sandbox pool counts for `/metrics`.
struct PoolMetrics: Sendable {
    let registry = MetricsRegistry()
    let requests: Counter
    let protocolErrors: Counter
    let provisioned: Counter
    let ended: Counter
    let toolCalls: Counter
    let toolSeconds: Histogram
    let egressConnections: Counter
    let egressBytes: Counter

    init() {
        requests = registry.counter("drover_pool_requests_total", "Protocol requests handled, by op.")
        protocolErrors = registry.counter("drover_protocol_errors_total", "Error replies, by stable code.")
        provisioned = registry.counter("drover_sandboxes_provisioned_total", "Sandboxes provisioned.")
        ended = registry.counter(
            "drover_sandboxes_ended_total", "Sandboxes ended, by reason (destroyed, session_ended, idle, evicted, shutdown).")
        toolCalls = registry.counter("drover_tool_calls_total", "Tool calls, by tool and outcome (ok, is_error, failed, repeated).")
        toolSeconds = registry.histogram("drover_tool_call_seconds", "Tool call duration in seconds, by tool.")
        egressConnections = registry.counter(
            "drover_egress_connections_total", "Connections sandboxes opened through the egress proxy, by decision and kind (or refusal code).")
        egressBytes = registry.counter("drover_egress_bytes_total", "Bytes relayed by the egress proxy, by direction (out of or into sandboxes).")
    }
}
