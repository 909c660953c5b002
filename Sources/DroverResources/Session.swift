import DroverCore

extension API {
    /// `BetaManagedAgentsSession`.
    public struct Session: APIResource {
        /// `session`.
        public var type: String
        public var id: String
        public var title: String?
        public var metadata: [String: String]
        public var environmentID: String
        /// `rescheduling`, `running`, `idle` or `terminated` (a queued session reads `running`).
        public var status: String
        /// The agent version the session runs (`BetaManagedAgentsSessionAgent`).
        public var agent: AgentDefinition
        public var resources: [SessionResource]
        public var vaultIDs: [String]
        public var outcomeEvaluations: [OutcomeEvaluation]
        public var deploymentID: String?
        public var budget: Budget?
        public var stats: SessionStats
        public var usage: SessionUsage
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, title, metadata, status, agent, resources, budget, stats, usage
            case environmentID = "environment_id"
            case vaultIDs = "vault_ids"
            case outcomeEvaluations = "outcome_evaluations"
            case deploymentID = "deployment_id"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }
    }

    /// `BetaManagedAgentsSessionStats` (a thread's adds `startup_seconds`).
    public struct SessionStats: APIResource, OmitsNilFields {
        public var durationSeconds: Double?
        public var activeSeconds: Double?
        public var startupSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case durationSeconds = "duration_seconds"
            case activeSeconds = "active_seconds"
            case startupSeconds = "startup_seconds"
        }
    }

    /// `BetaManagedAgentsSessionUsage`: what the log counted, nothing for what it did not.
    public struct SessionUsage: APIResource, OmitsNilFields {
        public var activeSeconds: Double?
        public var inputTokens: Int?
        public var outputTokens: Int?
        public var cacheReadInputTokens: Int?
        public var listCost: MonetaryAmount?

        enum CodingKeys: String, CodingKey {
            case activeSeconds = "active_seconds"
            case inputTokens = "input_tokens"
            case outputTokens = "output_tokens"
            case cacheReadInputTokens = "cache_read_input_tokens"
            case listCost = "list_cost"
        }
    }

    /// `BetaMonetaryAmount`: a decimal string of `currency` (`USD`).
    public struct MonetaryAmount: APIResource {
        public var amount: String
        public var currency: String
    }

    /// `BetaManagedAgentsBudgetLimit`.
    public struct Budget: APIResource {
        /// `limit`.
        public var type: String
        public var maxListCost: MonetaryAmount

        enum CodingKeys: String, CodingKey {
            case type
            case maxListCost = "max_list_cost"
        }
    }

    /// `BetaManagedAgentsOutcomeEvaluationResource`: one `user.define_outcome`'s state.
    public struct OutcomeEvaluation: APIResource {
        /// `outcome_evaluation`.
        public var type: String
        public var outcomeID: String
        public var description: String
        public var iteration: Int
        public var result: String
        public var explanation: String?
        public var completedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, description, iteration, result, explanation
            case outcomeID = "outcome_id"
            case completedAt = "completed_at"
        }
    }
}
