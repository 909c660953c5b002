import DroverCore

extension API {
    /// A webhook endpoint: where an organisation's events are delivered, signed.
    public struct WebhookEndpoint: APIResource {
        /// `webhook_endpoint`.
        public var type: String
        public var id: String
        public var name: String?
        public var description: String?
        public var url: String
        public var enabledEvents: [String]
        /// `enabled` or `disabled`.
        public var state: String
        public var disabledReason: String?
        public var createdAt: String
        public var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case type, id, name, description, url, state
            case enabledEvents = "enabled_events"
            case disabledReason = "disabled_reason"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }
    }

    /// One event's delivery to one endpoint, with its attempts.
    public struct WebhookDelivery: APIResource {
        /// `webhook_delivery`.
        public var type: String
        public var endpointID: String
        public var eventID: String
        public var eventType: String
        public var objectID: String
        /// `pending`, `delivered` or `failed`.
        public var status: String
        public var attempts: Int
        public var nextAttemptAt: String?
        public var lastAttemptAt: String?
        public var lastStatus: Int?
        public var lastError: String?
        public var deliveredAt: String?
        public var createdAt: String

        enum CodingKeys: String, CodingKey {
            case type, status, attempts
            case endpointID = "endpoint_id"
            case eventID = "event_id"
            case eventType = "event_type"
            case objectID = "object_id"
            case nextAttemptAt = "next_attempt_at"
            case lastAttemptAt = "last_attempt_at"
            case lastStatus = "last_status"
            case lastError = "last_error"
            case deliveredAt = "delivered_at"
            case createdAt = "created_at"
        }
    }
}

extension API {
    /// What creating an endpoint answers, once: the endpoint and the secret its deliveries are
    /// signed with (kept sealed, never shown again; `rotate` makes a new one).
    public struct CreatedWebhookEndpoint: APIResource {
        public var endpoint: WebhookEndpoint
        public var signingSecret: String

        enum CodingKeys: String, CodingKey {
            case signingSecret = "signing_secret"
        }

        public init(endpoint: WebhookEndpoint, signingSecret: String) {
            self.endpoint = endpoint
            self.signingSecret = signingSecret
        }

        public init(from decoder: any Decoder) throws {
            endpoint = try WebhookEndpoint(from: decoder)
            signingSecret = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .signingSecret)
        }

        public func encode(to encoder: any Encoder) throws {
            try endpoint.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(signingSecret, forKey: .signingSecret)
        }
    }
}
