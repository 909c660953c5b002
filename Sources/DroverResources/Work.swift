import DroverCore

extension API {
    /// A self-hosted environment's unit of work (`/v1/environments/{id}/work`), as the SDK's
    /// `EnvironmentWorker` polls, acknowledges and heartbeats it.
    public struct Work: APIResource {
        /// `work`.
        public var type: String
        public var id: String
        public var environmentID: String
        /// `{type: session, id}`.
        public var data: SessionReference
        public var state: String
        public var metadata: [String: String]
        /// Always null here: the worker authenticates with its environment key.
        public var secret: String?
        public var createdAt: String
        public var acknowledgedAt: String?
        public var startedAt: String?
        public var latestHeartbeatAt: String?
        public var stopRequestedAt: String?
        public var stoppedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, data, state, metadata, secret
            case environmentID = "environment_id"
            case createdAt = "created_at"
            case acknowledgedAt = "acknowledged_at"
            case startedAt = "started_at"
            case latestHeartbeatAt = "latest_heartbeat_at"
            case stopRequestedAt = "stop_requested_at"
            case stoppedAt = "stopped_at"
        }
    }
}
