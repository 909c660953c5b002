import DroverCore

extension API {
    /// `BetaManagedAgentsVault`.
    public struct Vault: APIResource {
        /// `vault`.
        public var type: String
        public var id: String
        public var displayName: String
        public var metadata: [String: String]
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, metadata
            case displayName = "display_name"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }
    }

    /// `BetaManagedAgentsCredential`: never its secret.
    public struct Credential: APIResource {
        /// `vault_credential`.
        public var type: String
        public var id: String
        public var vaultID: String
        public var displayName: String?
        public var metadata: [String: String]
        public var auth: CredentialAuth
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, metadata, auth
            case vaultID = "vault_id"
            case displayName = "display_name"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }
    }

    /// `BetaManagedAgentsStaticBearerAuthResponse` or `…MCPOAuthAuthResponse` (which adds when
    /// its token expires and how it is refreshed).
    public struct CredentialAuth: APIResource {
        /// `static_bearer` or `mcp_oauth`.
        public var type: String
        public var mcpServerURL: String
        public var expiresAt: String?
        /// `BetaManagedAgentsMCPOAuthRefreshResponse` (never the client secret).
        public var refresh: JSONValue?

        enum CodingKeys: String, CodingKey {
            case type, refresh
            case mcpServerURL = "mcp_server_url"
            case expiresAt = "expires_at"
        }

        /// A static bearer's has no `expires_at` or `refresh`; an OAuth one has both, null or not.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(type, forKey: .type)
            try container.encode(mcpServerURL, forKey: .mcpServerURL)
            if type == "mcp_oauth" {
                try container.encodeIfPresent(expiresAt, forKey: .expiresAt)
                try container.encodeIfPresent(refresh, forKey: .refresh)
            }
        }
    }
}
