import DroverCore

extension API {
    /// `BetaEnvironment`.
    public struct Environment: APIResource {
        /// `environment`.
        public var type: String
        public var id: String
        public var name: String
        public var description: String?
        public var config: EnvironmentConfig
        public var metadata: [String: String]
        /// `organization`.
        public var scope: String?
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, name, description, config, metadata, scope
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }
    }

    /// `BetaCloudConfig` (networking and packages given) or `BetaSelfHostedConfig` (neither),
    /// with Drover's own fields where they were set (docs/api.md).
    public struct EnvironmentConfig: APIResource, OmitsNilFields {
        /// `cloud` or `self_hosted`.
        public var type: String
        public var networking: Networking?
        public var packages: Packages?
        /// Drover's: a cloud sandbox's limits (`memory_mb`, `processes`, `timeout_s`, …), within
        /// the pool's ceilings (`ResourceCeilings`).
        public var resources: JSONValue?
        /// Drover's: the seconds a self-hosted call waits for a worker's result.
        public var toolDeadlineSeconds: Int?

        enum CodingKeys: String, CodingKey {
            case type, networking, packages, resources
            case toolDeadlineSeconds = "tool_deadline_s"
        }
    }

    /// `BetaUnrestrictedNetwork` or `BetaLimitedNetwork` (whose fields are then all given).
    public struct Networking: APIResource, OmitsNilFields {
        /// `unrestricted` or `limited`.
        public var type: String
        public var allowedHosts: [String]?
        public var allowMCPServers: Bool?
        public var allowPackageManagers: Bool?

        enum CodingKeys: String, CodingKey {
            case type
            case allowedHosts = "allowed_hosts"
            case allowMCPServers = "allow_mcp_servers"
            case allowPackageManagers = "allow_package_managers"
        }
    }

    /// `BetaPackages`: what each package manager installs when a sandbox starts.
    public struct Packages: APIResource {
        /// `packages`.
        public var type: String
        public var apt: [String]
        public var cargo: [String]
        public var gem: [String]
        public var go: [String]
        public var npm: [String]
        public var pip: [String]
    }
}
