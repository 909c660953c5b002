import DroverCore

extension API {
    /// One of an agent's `tools`: the SDK's union, told apart by `type`.
    public enum AgentTool: APIResource {
        /// `agent_toolset_20260401`: the built-in tools, each with its config.
        case toolset(Toolset)
        /// `mcp_toolset`: the tools of one of the agent's MCP servers.
        case mcpToolset(MCPToolset)
        /// `custom`: a tool the client runs.
        case custom(CustomTool)

        enum CodingKeys: String, CodingKey { case type }

        public init(from decoder: any Decoder) throws {
            let type = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type)
            switch type {
            case "mcp_toolset": self = .mcpToolset(try MCPToolset(from: decoder))
            case "custom": self = .custom(try CustomTool(from: decoder))
            default: self = .toolset(try Toolset(from: decoder))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .toolset(let tool): try tool.encode(to: encoder)
            case .mcpToolset(let tool): try tool.encode(to: encoder)
            case .custom(let tool): try tool.encode(to: encoder)
            }
        }
    }

    /// `BetaManagedAgentsAgentToolset20260401`.
    public struct Toolset: APIResource {
        public var type: String
        public var defaultConfig: ToolDefault
        public var configs: [ToolConfig]

        enum CodingKeys: String, CodingKey {
            case type, configs
            case defaultConfig = "default_config"
        }
    }

    /// `BetaManagedAgentsAgentToolsetDefaultConfig` / `BetaManagedAgentsMCPToolsetDefaultConfig`.
    public struct ToolDefault: APIResource {
        public var enabled: Bool
        public var permissionPolicy: PermissionPolicy

        enum CodingKeys: String, CodingKey {
            case enabled
            case permissionPolicy = "permission_policy"
        }
    }

    /// A built-in tool's config (`BetaManagedAgentsBashToolConfig`, …): `type` and `name` are the
    /// tool's name.
    public struct ToolConfig: APIResource {
        public var type: String
        public var name: String
        public var enabled: Bool
        public var permissionPolicy: PermissionPolicy

        enum CodingKeys: String, CodingKey {
            case type, name, enabled
            case permissionPolicy = "permission_policy"
        }
    }

    /// `always_allow`, `always_ask` or `auto`.
    public struct PermissionPolicy: APIResource {
        public var type: String
    }

    /// `BetaManagedAgentsMCPToolset`.
    public struct MCPToolset: APIResource {
        public var type: String
        public var mcpServerName: String
        public var defaultConfig: ToolDefault
        /// `BetaManagedAgentsMCPToolConfig`s, as the agent named them.
        public var configs: [JSONValue]

        enum CodingKeys: String, CodingKey {
            case type, configs
            case mcpServerName = "mcp_server_name"
            case defaultConfig = "default_config"
        }
    }

    /// `BetaManagedAgentsCustomTool`.
    public struct CustomTool: APIResource {
        public var type: String
        public var name: String
        public var description: String
        /// A JSON schema (`{type: object, properties, required}`).
        public var inputSchema: JSONValue

        enum CodingKeys: String, CodingKey {
            case type, name, description
            case inputSchema = "input_schema"
        }
    }
}
