import DroverCore

extension API {
    /// `BetaManagedAgentsSessionThread`: a subagent's thread of a session.
    public struct SessionThread: APIResource {
        /// `session_thread`.
        public var type: String
        public var id: String
        public var sessionID: String
        public var parentThreadID: String?
        public var workflowRunID: String?
        /// A saved agent's definition, or an inline agent's (`type: inline`, no id or version).
        public var agent: JSONValue
        public var status: String
        public var stats: SessionStats?
        public var usage: SessionUsage?
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, agent, status, stats, usage
            case sessionID = "session_id"
            case parentThreadID = "parent_thread_id"
            case workflowRunID = "workflow_run_id"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }
    }
}
