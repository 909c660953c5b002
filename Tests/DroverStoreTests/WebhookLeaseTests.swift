import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// The webhook outbox's endpoint lease (migration 0030): one deliverer per endpoint, and a
/// delivery handed out once.
struct WebhookLeaseTests {
    /// A deliverer whose attempt outlasted its lease records it (delivered) and releases the lease
    /// while another's look-up has already taken its snapshot and waits on the endpoint: the
    /// look-up must not hand out the delivery just made. (It did: the endpoint's lease was re-checked on its newest version, the
    /// delivery read from the stale snapshot, and the event went out twice, once per replica.)
    @Test func aDeliveryJustRecordedIsNotHandedOutAgain() async throws {
        try await TestDatabase.with { database in
            let pool = database.pool(maxConnections: 4)
            defer { pool.close() }
            let tenants = TenantStore(pool: pool)
            let org = try await tenants.organization(named: "hooks")
            let endpoint = try await tenants.createWebhook(
                org: org, ["url": "https://hooks.example.com/x", "enabled_events": ["session.status_idled"]], key: TestDatabase.vaultKey)
            let endpointID = endpoint.endpoint.id
            _ = try await pool.query("SELECT drover.webhook_emit($1, 'session.status_idled', 'sesn_x')", [org])
            let first = try #require(try await tenants.nextWebhookDelivery(holder: "api_a", ttl: 30, key: TestDatabase.vaultKey))
            // A's attempt outlasted its lease (a stall under load), so B may take the endpoint.
            _ = try await pool.query("UPDATE drover.webhook_endpoints SET lease_until = now() - interval '1 second' WHERE id = $1", [endpointID])
            // Replica A's record, held open: the endpoint row stays locked until it commits.
            let recording = Task {
                try await pool.transaction { connection in
                    _ = try await connection.query(
                        "UPDATE drover.webhook_deliveries SET attempts = attempts + 1, status = 'delivered' WHERE endpoint_id = $1 AND event_seq = $2",
                        [endpointID, first.seq])
                    _ = try await connection.query(
                        "UPDATE drover.webhook_endpoints SET lease_owner = NULL, lease_until = NULL WHERE id = $1", [endpointID])
                    try await Task.sleep(for: .milliseconds(700))
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            // Replica B looks while A's record is open: it waits on the endpoint, then sees the lease free.
            let second = try await tenants.nextWebhookDelivery(holder: "api_b", ttl: 30, key: TestDatabase.vaultKey)
            try await recording.value
            #expect(second == nil, "handed out again: \(String(describing: second?.messageID))")
        }
    }
}
