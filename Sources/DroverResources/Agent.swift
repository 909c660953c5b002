import DroverCore

extension API {
    /// `BetaManagedAgentsAgent`: an agent version, with the first version's `created_at`.
    public struct Agent: APIResource {
        public var definition: AgentDefinition
        public var metadata: [String: String]
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case metadata
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }

        /// One JSON object: the definition's fields beside the version's own.
        public init(from decoder: any Decoder) throws {
            definition = try AgentDefinition(from: decoder)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            metadata = try container.decode([String: String].self, forKey: .metadata)
            createdAt = try container.decode(String.self, forKey: .createdAt)
            updatedAt = try container.decode(String.self, forKey: .updatedAt)
            archivedAt = try container.decodeIfPresent(String.self, forKey: .archivedAt)
        }

        public func encode(to encoder: any Encoder) throws {
            try definition.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(metadata, forKey: .metadata)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(updatedAt, forKey: .updatedAt)
            try container.encodeIfPresent(archivedAt, forKey: .archivedAt)
        }
    }

    /// What `BetaManagedAgentsAgent` and a session's `BetaManagedAgentsSessionAgent` share: the
    /// definition a session runs.
    public struct AgentDefinition: APIResource {
        /// `agent`.
        public var type: String
        public var id: String
        public var version: Int
        public var name: String
        public var description: String?
        public var model: ModelConfig
        public var system: String?
        public var tools: [AgentTool]
        public var skills: [SkillReference]
        public var mcpServers: [MCPServerDefinition]
        /// `BetaManagedAgentsMultiagent` (coordinator or multiagent_20261001), as resolved by
        /// `MultiagentConfig`.
        public var multiagent: JSONValue?
        public var executionIdentity: ExecutionIdentity

        enum CodingKeys: String, CodingKey {
            case type, id, version, name, description, model, system, tools, skills, multiagent
            case mcpServers = "mcp_servers"
            case executionIdentity = "execution_identity"
        }
    }

    /// `BetaManagedAgentsModelConfig`.
    public struct ModelConfig: APIResource, OmitsNilFields {
        public var id: String
        public var speed: String?
        /// `{type: low|medium|high|xhigh|max}`.
        public var effort: JSONValue?
        public var inferenceGeo: String?

        enum CodingKeys: String, CodingKey {
            case id, speed, effort
            case inferenceGeo = "inference_geo"
        }
    }

    /// `BetaManagedAgentsServiceAccountExecutionIdentity` (every agent's; `aws_role` is refused).
    public struct ExecutionIdentity: APIResource, OmitsNilFields {
        public var type: String
        public var roleARN: String?

        enum CodingKeys: String, CodingKey {
            case type
            case roleARN = "role_arn"
        }
    }

    /// `BetaManagedAgentsMCPServerURLDefinition`.
    public struct MCPServerDefinition: APIResource {
        /// `url`.
        public var type: String
        public var name: String
        public var url: String
    }

    /// `BetaManagedAgentsAnthropicSkill` / `BetaManagedAgentsCustomSkill`.
    public struct SkillReference: APIResource {
        /// `anthropic` or `custom`.
        public var type: String
        public var skillID: String
        public var version: String

        enum CodingKeys: String, CodingKey {
            case type, version
            case skillID = "skill_id"
        }
    }
}
