import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Webhook endpoints (`/v1/webhooks`, `drover webhook`), their delivery log, and what a
/// deliverer needs (migration 0030): the outbox is written by triggers; a deliverer leases one
/// endpoint at a time and sends its deliveries oldest first.
extension TenantStore {
    /// Event types Drover writes, as the SDK's `BetaWebhookEventData` names them.
    public static let webhookEventTypes: Set<String> = [
        "session.created", "session.archived", "session.deleted", "session.updated", "session.status_run_started",
        "session.status_idled", "session.status_rescheduled", "session.requires_action", "session.budget_reached",
        "session.outcome_evaluation_ended",
        "agent.created", "agent.updated", "agent.archived",
        "environment.created", "environment.updated", "environment.archived", "environment.deleted",
        "vault.created", "vault.archived", "vault.deleted", "memory_store.created", "memory_store.archived", "memory_store.deleted",
        "deployment.created", "deployment.updated", "deployment.archived", "deployment.paused", "deployment.unpaused",
        "deployment_run.started", "deployment_run.succeeded", "deployment_run.failed",
    ]

    static func webhookFields(_ body: JSONValue, creating: Bool) throws -> (url: String?, events: [String]?, name: String?, description: String?, state: String?) {
        guard case .object(let fields) = body else { throw DroverError(.invalidArgument, "the body must be a JSON object") }
        let known: Set = creating ? ["url", "enabled_events", "name", "description"] : ["url", "enabled_events", "name", "description", "state"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) { throw DroverError(.invalidArgument, "\(unknown): unknown field") }
        var url: String?
        if let value = fields["url"] {
            guard let text = value.stringValue, let parsed = URL(string: text), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
                  parsed.host?.isEmpty == false, text.utf8.count <= 2048 else {
                throw DroverError(.invalidArgument, "url: an http or https URL is required")
            }
            url = text
        } else if creating {
            throw DroverError(.invalidArgument, "url is required")
        }
        var events: [String]?
        if let value = fields["enabled_events"] {
            guard case .array(let items) = value else { throw DroverError(.invalidArgument, "enabled_events must be an array of event types") }
            let types = items.compactMap(\.stringValue)
            guard types.count == items.count else { throw DroverError(.invalidArgument, "enabled_events must be an array of event types") }
            if let unknown = types.first(where: { !webhookEventTypes.contains($0) }) {
                throw DroverError(.invalidArgument, "enabled_events: \(unknown) is not an event this server sends (docs/api.md, Webhooks)")
            }
            if creating && types.isEmpty { throw DroverError(.invalidArgument, "enabled_events must list at least one type") }
            events = types.isEmpty ? nil : Array(Set(types)).sorted()
        } else if creating {
            throw DroverError(.invalidArgument, "enabled_events is required")
        }
        for key in ["name", "description"] where fields[key] != nil && fields[key]?.stringValue == nil {
            throw DroverError(.invalidArgument, "\(key) must be a string")
        }
        let state = fields["state"]?.stringValue
        if fields["state"] != nil && !["enabled", "disabled"].contains(state ?? "") {
            throw DroverError(.invalidArgument, "state must be enabled or disabled")
        }
        return (url, events, fields["name"]?.stringValue, fields["description"]?.stringValue, state)
    }

    /// A signing secret: `whsec_` and 32 random bytes in base64, as Standard Webhooks has it.
    static func newSigningSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
    }

    /// A new endpoint, answered with its signing secret (never shown again).
    public func createWebhook(org: String, _ body: JSONValue, key: String?) async throws -> API.CreatedWebhookEndpoint {
        let fields = try Self.webhookFields(body, creating: true)
        let key = try VaultKey.required(key)
        let secret = Self.newSigningSecret()
        let created: API.WebhookEndpoint = try await written(
            """
            INSERT INTO drover.webhook_endpoints AS w (id, org_id, name, description, url, enabled_events, secret, key_id)
            VALUES (drover.new_id('whep'), $1, coalesce($2, ''), coalesce($3, ''), $4, $5::text[], drover.vault_seal($6, $7), drover.vault_key_id($7))
            RETURNING drover.api_webhook_endpoint_json(w)::text
            """, [org, fields.name, fields.description, fields.url, fields.events, secret, key], missing: "the new endpoint")
        return API.CreatedWebhookEndpoint(endpoint: created, signingSecret: secret)
    }

    public func webhook(org: String, id: String) async throws -> API.WebhookEndpoint {
        try await owned("drover.webhook_endpoints", render: "drover.api_webhook_endpoint_json", id: id, org: org, what: "webhook endpoint")
    }

    public func webhooks(org: String, limit: Int, page: String?) async throws -> APIPage<API.WebhookEndpoint> {
        guard limit <= 100 else { throw DroverError(.invalidArgument, "limit must be between 1 and 100") }
        return try await byCreation(
            "drover.webhook_endpoints", render: "drover.api_webhook_endpoint_json", org: org, includeArchived: true, page: page, limit: limit)
    }

    /// Each field given replaces; `state: enabled` resumes deliveries (what is pending is sent)
    /// and clears `disabled_reason`.
    public func updateWebhook(org: String, id: String, _ body: JSONValue) async throws -> API.WebhookEndpoint {
        let fields = try Self.webhookFields(body, creating: false)
        return try await written(
            """
            UPDATE drover.webhook_endpoints w
               SET url = coalesce($3, w.url), enabled_events = coalesce($4::text[], w.enabled_events), name = coalesce($5, w.name),
                   description = coalesce($6, w.description), state = coalesce($7, w.state),
                   disabled_reason = CASE WHEN $7 IS NULL THEN w.disabled_reason ELSE '' END, updated_at = now()
             WHERE w.id = $1 AND w.org_id = $2
            RETURNING drover.api_webhook_endpoint_json(w)::text
            """, [id, org, fields.url, fields.events, fields.name, fields.description, fields.state], missing: "no webhook endpoint \(id)")
    }

    public func deleteWebhook(org: String, id: String) async throws -> API.Deleted {
        try await one(
            "DELETE FROM drover.webhook_endpoints WHERE id = $1 AND org_id = $2 RETURNING jsonb_build_object('id', id, 'type', 'webhook_endpoint_deleted')::text",
            [id, org], missing: "no webhook endpoint \(id)")
    }

    public func regenerateWebhookSecret(org: String, id: String, key: String?) async throws -> JSONValue {
        let key = try VaultKey.required(key)
        let secret = Self.newSigningSecret()
        _ = try await one(
            """
            UPDATE drover.webhook_endpoints SET secret = drover.vault_seal($3, $4), key_id = drover.vault_key_id($4), updated_at = now()
             WHERE id = $1 AND org_id = $2 RETURNING '{}'::text
            """, [id, org, secret, key], missing: "no webhook endpoint \(id)")
        return ["signing_secret": .string(secret)]
    }

    /// An endpoint's delivery log, newest event first.
    public func webhookDeliveries(org: String, id: String, limit: Int, page: String?, status: String?) async throws -> APIPage<API.WebhookDelivery> {
        _ = try await webhook(org: org, id: id)
        if let status, !["pending", "delivered", "failed"].contains(status) {
            throw DroverError(.invalidArgument, "status must be pending, delivered or failed")
        }
        let after = try Self.decodeCursor(page).flatMap { Int64($0) }
        return try await pagedRows(
            """
            SELECT drover.api_webhook_delivery_json(d, e)::text, d.event_seq::text
              FROM drover.webhook_deliveries d JOIN drover.webhook_events e ON e.seq = d.event_seq
             WHERE d.endpoint_id = $1 AND ($2::bigint IS NULL OR d.event_seq < $2) AND ($4::text IS NULL OR d.status = $4)
             ORDER BY d.event_seq DESC LIMIT $3
            """, [id, after, limit + 1, status], limit: limit)
    }

    // MARK: - Delivering

    /// The delivery at the head of an endpoint's queue, signed for sending now.
    public struct WebhookDelivery: Sendable {
        public var endpointID: String
        public var url: String
        public var seq: Int64
        public var attempts: Int
        public var queuedAt: Date
        public var messageID: String
        public var body: String
        public var timestamp: Int64
        public var signature: String
    }

    /// Leases an endpoint whose oldest pending delivery is due (one deliverer per endpoint keeps
    /// its order) for `ttl` seconds and answers that delivery, signed at `now`; nil when none is due.
    public func nextWebhookDelivery(holder: String, ttl: Double, key: String?) async throws -> WebhookDelivery? {
        try await mappingErrors {
            guard let row = try await pool.query(
                """
                WITH heads AS (
                    -- Each endpoint's oldest pending delivery, from the pending index (nothing
                    -- pending: nothing read).
                    SELECT DISTINCT ON (d.endpoint_id) d.endpoint_id AS id, d.event_seq AS seq, d.next_attempt_at
                      FROM drover.webhook_deliveries d WHERE d.status = 'pending' ORDER BY d.endpoint_id, d.event_seq
                ), due AS (
                    SELECT h.id, h.seq FROM heads h JOIN drover.webhook_endpoints w ON w.id = h.id
                     WHERE w.state = 'enabled' AND (w.lease_until IS NULL OR w.lease_until < clock_timestamp() OR w.lease_owner = $1)
                       AND h.next_attempt_at <= clock_timestamp()
                     ORDER BY h.next_attempt_at LIMIT 1
                ), leased AS (
                    UPDATE drover.webhook_endpoints w SET lease_owner = $1, lease_until = clock_timestamp() + make_interval(secs => $2)
                      FROM due WHERE w.id = due.id
                       AND (w.lease_until IS NULL OR w.lease_until < clock_timestamp() OR w.lease_owner = $1)
                    RETURNING w.id, w.url, due.seq
                )
                -- The delivery is locked and read again: the statement's snapshot may predate the
                -- commit of the attempt that delivered it and released the lease just taken (the
                -- lock reads its newest version, which is then no longer pending, and nothing is
                -- sent twice).
                SELECT l.id, l.url, l.seq, d.attempts, e.created_at, s.msg_id, s.body, s.signature, extract(epoch FROM now())::bigint
                  FROM leased l
                 CROSS JOIN LATERAL (SELECT x.attempts FROM drover.webhook_deliveries x
                                      WHERE x.endpoint_id = l.id AND x.event_seq = l.seq AND x.status = 'pending' FOR UPDATE) d
                  JOIN drover.webhook_events e ON e.seq = l.seq
                 CROSS JOIN LATERAL drover.webhook_signed(l.id, l.seq, extract(epoch FROM now())::bigint, $3) s
                """, [holder, ttl, key]).first else { return nil }
            return WebhookDelivery(
                endpointID: try row.decode(0), url: try row.decode(1), seq: try row.decode(2), attempts: try row.decode(3),
                queuedAt: try row.decode(4), messageID: try row.decode(5), body: try row.decode(6), timestamp: try row.decode(8),
                signature: try row.decode(7))
        }
    }

    /// Records one attempt: delivered, retried at `retryAt`, or given up (`retryAt` nil) with the
    /// endpoint disabled for `disableReason`. The endpoint's lease is let go.
    public func recordWebhookAttempt(_ delivery: WebhookDelivery, holder: String, status: Int?, error: String?, delivered: Bool,
                                     retryAt: Date?, disableReason: String?) async throws {
        _ = try await mappingErrors {
            try await pool.transaction { connection in
                _ = try await connection.query(
                    """
                    UPDATE drover.webhook_deliveries
                       SET attempts = attempts + 1, last_attempt_at = clock_timestamp(), last_status = $3, last_error = $4,
                           status = CASE WHEN $5 THEN 'delivered' WHEN $6::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                           delivered_at = CASE WHEN $5 THEN clock_timestamp() END, next_attempt_at = coalesce($6, next_attempt_at)
                     WHERE endpoint_id = $1 AND event_seq = $2 AND status = 'pending'
                    """, [delivery.endpointID, delivery.seq, status, error, delivered, retryAt])
                _ = try await connection.query(
                    """
                    UPDATE drover.webhook_endpoints
                       SET lease_owner = NULL, lease_until = NULL,
                           state = CASE WHEN $3::text IS NULL THEN state ELSE 'disabled' END,
                           disabled_reason = coalesce($3, disabled_reason), updated_at = CASE WHEN $3::text IS NULL THEN updated_at ELSE now() END
                     WHERE id = $1 AND lease_owner = $2
                    """, [delivery.endpointID, holder, disableReason])
            }
        }
    }
}
