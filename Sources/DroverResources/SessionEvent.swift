import DroverCore

extension API {
    /// One event of a session's log as the API serves it (`BetaManagedAgentsSessionEvent`).
    ///
    /// The SDK's event union has some forty members, and each payload was typed when it was
    /// written (`HarnessEvent`, the provider's own response for the model's, the API's checks for
    /// a user's); what is read back is served as logged, with the envelope every member shares
    /// checked here.
    public struct SessionEvent: APIResource {
        public var id: String
        public var type: EventType
        public var processedAt: String
        /// The whole event, envelope included.
        public var body: JSONValue

        enum CodingKeys: String, CodingKey {
            case id, type
            case processedAt = "processed_at"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decode(String.self, forKey: .id)
            type = EventType(rawValue: try container.decode(String.self, forKey: .type))
            processedAt = try container.decode(String.self, forKey: .processedAt)
            body = try decoder.singleValueContainer().decode(JSONValue.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(body)
        }
    }

    /// What a delete answers: the id and `<resource>_deleted`.
    public struct Deleted: APIResource {
        public var id: String
        public var type: String

        public init(id: String, type: String) {
            self.id = id
            self.type = type
        }
    }
}
