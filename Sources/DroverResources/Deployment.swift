import DroverCore

extension API {
    /// `BetaManagedAgentsDeployment`: a session template, run by hand or on a schedule.
    public struct Deployment: APIResource {
        /// `deployment`.
        public var type: String
        public var id: String
        public var name: String
        public var description: String?
        public var agent: AgentReference
        public var environmentID: String
        /// The SDK's deployment event union, as checked when the deployment was written.
        public var initialEvents: [JSONValue]
        /// The SDK's resource config union, as checked when the deployment was written.
        public var resources: [JSONValue]
        public var vaultIDs: [String]
        public var metadata: [String: String]
        public var budget: Budget?
        /// `active` or `paused`.
        public var status: String
        /// `manual` or `error` (with the cause).
        public var pausedReason: JSONValue?
        /// `BetaManagedAgentsSchedule`, with `last_run_at` and `upcoming_runs_at`.
        public var schedule: JSONValue?
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, name, description, agent, resources, metadata, budget, status, schedule
            case environmentID = "environment_id"
            case initialEvents = "initial_events"
            case vaultIDs = "vault_ids"
            case pausedReason = "paused_reason"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }
    }

    /// `BetaManagedAgentsDeploymentRun`: one run, and the session it made (or why not).
    public struct DeploymentRun: APIResource {
        /// `deployment_run`.
        public var type: String
        public var id: String
        public var deploymentID: String
        public var agent: AgentReference
        public var sessionID: String?
        public var error: JSONValue?
        /// `{type: manual}` or `{type: schedule, scheduled_at}`.
        public var triggerContext: JSONValue
        public var createdAt: String

        enum CodingKeys: String, CodingKey {
            case type, id, agent, error
            case deploymentID = "deployment_id"
            case sessionID = "session_id"
            case triggerContext = "trigger_context"
            case createdAt = "created_at"
        }
    }

    /// `BetaManagedAgentsAgentReference`: an agent version by id.
    public struct AgentReference: APIResource {
        /// `agent`.
        public var type: String
        public var id: String
        public var version: Int
    }
}
