import DroverCore
import DroverIO
import DroverModel
import DroverStore
import Foundation

/// Delivers webhook events from the outbox (migration 0030): leases one endpoint at a time, sends
/// its oldest pending delivery as a signed POST (Standard Webhooks headers `webhook-id`,
/// `webhook-timestamp`, `webhook-signature`, which the SDK's `webhooks.unwrap` verifies), and
/// records the answer: 2xx delivered; anything else retried per `WebhookRetry`, then given up
/// with the endpoint disabled. Every `drover api` process runs one; an endpoint's lease keeps its
/// deliveries in order. The URL is reached under the operator's address rule, as egress is.
public struct WebhookDeliverer: Sendable {
    public struct Config: Sendable {
        public var retry = WebhookRetry()
        /// Seconds a delivery may take.
        public var timeout: Double = 10
        /// Seconds between looks at the outbox when nothing was due.
        public var idle: Double = 0.2
        public var addressRule = AddressRule()
        public init() {}
    }

    let store: TenantStore
    let config: Config
    let vaultKey: String?
    let log: Log
    let client = HTTPClient()
    /// This process, as lease holders are named (`api_<host>_<pid>_<random>`).
    let holder: String

    func run() async {
        while !Task.isCancelled {
            var sent = false
            do {
                // The lease outlasts one attempt with room for a stalled process to record it (an
                // attempt that outlives its lease may be sent again by another replica); a
                // process that dies holding it holds up its endpoint only that long.
                if let delivery = try await store.nextWebhookDelivery(holder: holder, ttl: 2 * config.timeout + 5, key: vaultKey) {
                    sent = true
                    try await deliver(delivery)
                }
            } catch {
                log.warning("webhook delivery failed", ("error", .string(String(reflecting: error))))
            }
            if !sent { try? await Task.sleep(for: .seconds(config.idle)) }
        }
    }

    func deliver(_ delivery: TenantStore.WebhookDelivery) async throws {
        var request = HTTPRequest(
            url: delivery.url, method: "POST",
            headers: [("content-type", "application/json"), ("user-agent", "drover-webhooks"), ("webhook-id", delivery.messageID),
                      ("webhook-timestamp", String(delivery.timestamp)), ("webhook-signature", delivery.signature)],
            body: Array(delivery.body.utf8), connectTimeout: min(5, config.timeout), idleTimeout: config.timeout)
        request.addressRule = config.addressRule
        request.totalTimeout = config.timeout
        request.maxResponseBytes = 64 * 1024
        var status: Int?
        var failure: String?
        do {
            let (head, _) = try await client.fetch(request)
            status = head.status
            if !(200..<300).contains(head.status) { failure = "HTTP \(head.status)" }
        } catch let error as HTTPError {
            failure = error.refusal.map { "refused: \($0.message)" } ?? error.message
        }
        let delivered = failure == nil
        let now = Date()
        let retryAt = delivered ? nil : config.retry.nextAttempt(afterFailure: delivery.attempts + 1, queuedAt: delivery.queuedAt, now: now)
        let disable = !delivered && retryAt == nil
            ? "deliveries failed for \(Int(config.retry.giveUpAfter / 3600)) hours (last: \(failure ?? ""))" : nil
        try await store.recordWebhookAttempt(
            delivery, holder: holder, status: status, error: failure, delivered: delivered, retryAt: retryAt, disableReason: disable)
        log.info(delivered ? "webhook delivered" : "webhook attempt failed", ("endpoint", .string(delivery.endpointID)),
                 ("event", .string(delivery.messageID)), ("attempt", .number(Double(delivery.attempts + 1))),
                 ("status", status.map { .number(Double($0)) } ?? .null), ("error", failure.map(JSONValue.string) ?? .null))
        if let disable { log.warning("webhook endpoint disabled", ("endpoint", .string(delivery.endpointID)), ("reason", .string(disable))) }
    }
}
