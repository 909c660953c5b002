import DroverCore

extension API {
    /// `BetaDream`: a session that reads memory stores and sessions and writes a store.
    public struct Dream: APIResource {
        /// `dream`.
        public var type: String
        public var id: String
        /// `pending`, `running`, `completed`, `failed` or `canceled`.
        public var status: String
        /// `BetaDreamMemoryStoreInput` and `BetaDreamSessionsInput`.
        public var inputs: [JSONValue]
        public var instructions: String?
        /// `BetaDreamModelConfig`.
        public var model: JSONValue
        /// `create_new` or `update_existing`.
        public var outputBehavior: JSONValue
        public var outputs: [JSONValue]
        public var sessionID: String?
        public var error: JSONValue?
        public var usage: DreamUsage
        public var createdAt: String
        public var endedAt: String?
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, status, inputs, instructions, model, outputs, error, usage
            case outputBehavior = "output_behavior"
            case sessionID = "session_id"
            case createdAt = "created_at"
            case endedAt = "ended_at"
            case archivedAt = "archived_at"
        }
    }

    /// `BetaDreamUsage`.
    public struct DreamUsage: APIResource {
        public var inputTokens: Int
        public var outputTokens: Int
        public var cacheReadInputTokens: Int
        public var cacheCreationInputTokens: Int

        enum CodingKeys: String, CodingKey {
            case inputTokens = "input_tokens"
            case outputTokens = "output_tokens"
            case cacheReadInputTokens = "cache_read_input_tokens"
            case cacheCreationInputTokens = "cache_creation_input_tokens"
        }
    }
}
