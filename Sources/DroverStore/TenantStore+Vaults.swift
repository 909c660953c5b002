import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Vaults and their credentials, as `/v1/vaults` serves them: write-only secrets, sealed with the
/// process's vault key (`VaultKey`) before they reach a table, never returned.
extension TenantStore {
    public func createVault(org: String, _ body: JSONValue) async throws -> API.Vault {
        guard let name = body["display_name"]?.stringValue, !name.isEmpty, name.count <= 255 else {
            throw DroverError(.invalidArgument, "display_name: a string of 1-255 characters is required")
        }
        return try await written(
            """
            INSERT INTO drover.vaults AS v (id, org_id, display_name, metadata)
            VALUES (drover.new_id('vlt'), $1, $2, coalesce($3::jsonb, '{}'))
            RETURNING drover.api_vault_json(v)::text
            """, [org, name, Self.text(body["metadata"])], missing: "")
    }

    public func vault(org: String, id: String) async throws -> API.Vault {
        try await owned("drover.vaults", render: "drover.api_vault_json", id: id, org: org, what: "vault")
    }

    public func vaults(org: String, limit: Int, page: String?, includeArchived: Bool) async throws -> APIPage<API.Vault> {
        try await byCreation("drover.vaults", render: "drover.api_vault_json", org: org, includeArchived: includeArchived, page: page, limit: limit)
    }

    public func updateVault(org: String, id: String, _ body: JSONValue) async throws -> API.Vault {
        try await written(
            """
            UPDATE drover.vaults v
               SET display_name = coalesce($3, v.display_name), metadata = jsonb_strip_nulls(v.metadata || coalesce($4::jsonb, '{}')), updated_at = now()
             WHERE v.id = $1 AND v.org_id = $2
            RETURNING drover.api_vault_json(v)::text
            """, [id, org, body["display_name"]?.stringValue, Self.text(body["metadata"])], missing: "no vault \(id)")
    }

    public func archiveVault(org: String, id: String) async throws -> API.Vault {
        try await one(
            """
            UPDATE drover.vaults v SET archived_at = coalesce(v.archived_at, now()), updated_at = now()
             WHERE v.id = $1 AND v.org_id = $2 RETURNING drover.api_vault_json(v)::text
            """, [id, org], missing: "no vault \(id)")
    }

    /// Deletes a vault and its credentials (sessions that named it simply find no credential).
    public func deleteVault(org: String, id: String) async throws -> API.Deleted {
        let deleted = try await mappingErrors {
            try await pool.query("DELETE FROM drover.vaults WHERE id = $1 AND org_id = $2 RETURNING id", [id, org])
        }
        guard !deleted.isEmpty else { throw DroverError(.notFound, "no vault \(id)") }
        return API.Deleted(id: id, type: "vault_deleted")
    }

    /// A credential: `auth` is `{type: static_bearer, token, mcp_server_url}` or `{type:
    /// mcp_oauth, mcp_server_url, access_token, expires_at, refresh}` (`MCPOAuthCredential`). Its
    /// secrets are sealed in the statement that stores them and never read back by the API.
    public func createCredential(org: String, vault: String, _ body: JSONValue, key: String?) async throws -> API.Credential {
        let owner = try await self.vault(org: org, id: vault)
        if owner.archivedAt != nil { throw DroverError(.invalidArgument, "vault \(vault) is archived") }
        let auth = body["auth"] ?? .null
        let (type, url, secret, expiresAt, refresh): (String, String, String, Date?, JSONValue?)
        switch auth["type"]?.stringValue {
        case "static_bearer":
            guard let token = auth["token"]?.stringValue, !token.isEmpty else { throw DroverError(.invalidArgument, "auth.token: a non-empty string is required") }
            guard let given = auth["mcp_server_url"]?.stringValue, given.hasPrefix("http://") || given.hasPrefix("https://") else {
                throw DroverError(.invalidArgument, "auth.mcp_server_url: an http(s) URL is required")
            }
            (type, url, secret, expiresAt, refresh) = ("static_bearer", given, token, nil, nil)
        case "mcp_oauth":
            let oauth = try MCPOAuthCredential(creating: auth)
            (type, url, secret, expiresAt, refresh) = ("mcp_oauth", oauth.mcpServerURL, oauth.secrets.text, oauth.expiresAt, oauth.refresh)
        default:
            throw DroverError(.invalidArgument, "auth.type: static_bearer or mcp_oauth (environment_variable credentials are not supported by this server)")
        }
        let key = try VaultKey.required(key)
        return try await written(
            """
            INSERT INTO drover.vault_credentials AS c
                   (id, vault_id, org_id, display_name, metadata, auth_type, mcp_server_url, secret, key_id, expires_at, refresh)
            VALUES (drover.new_id('vcrd'), $1, $2, $3, coalesce($4::jsonb, '{}'), $8, $5,
                    drover.vault_seal($6, $7), drover.vault_key_id($7), $9, $10::jsonb)
            RETURNING drover.api_credential_json(c)::text
            """,
            [vault, org, body["display_name"]?.stringValue, Self.text(body["metadata"]), url, secret, key, type, expiresAt, refresh.map(\.text)],
            missing: "")
    }

    public func credential(org: String, vault: String, id: String) async throws -> API.Credential {
        try await one(
            "SELECT drover.api_credential_json(c)::text FROM drover.vault_credentials c WHERE c.id = $1 AND c.vault_id = $2 AND c.org_id = $3",
            [id, vault, org], missing: "no credential \(id) in vault \(vault)")
    }

    /// One credential with its secrets opened (for `mcp_oauth_validate`), or `notFound`.
    public func openedCredential(org: String, vault: String, id: String, key: String?) async throws -> (credential: VaultCredentials.Credential, type: String) {
        let rows = try await mappingErrors {
            try await pool.query(
                """
                SELECT \(VaultCredentials.columns)
                  FROM drover.vault_credentials c JOIN drover.vaults v ON v.id = c.vault_id
                 WHERE c.id = $1 AND c.vault_id = $3 AND v.org_id = $4 AND c.archived_at IS NULL
                """, [id, key, vault, org])
        }
        guard let row = rows.first else { throw DroverError(.notFound, "no credential \(id) in vault \(vault)") }
        return (try VaultCredentials.Credential(opened: row), try row.decode(3))
    }

    public func credentials(org: String, vault: String, limit: Int, page: String?, includeArchived: Bool) async throws -> APIPage<API.Credential> {
        _ = try await self.vault(org: org, id: vault)
        return try await byCreation(
            "drover.vault_credentials", render: "drover.api_credential_json", org: org, includeArchived: includeArchived, page: page,
            limit: limit, filter: "t.vault_id = $6", extra: [vault])
    }

    /// Updates a credential: `display_name`, `metadata` (a key set to null is removed) and `auth`:
    /// a bearer's `token`, or an `mcp_oauth`'s access token, expiry and refresh settings (secrets
    /// sealed in the statement that stores them). `auth.type` must stay the credential's; its
    /// `mcp_server_url` cannot change.
    public func updateCredential(org: String, vault: String, id: String, _ body: JSONValue, key: String?) async throws -> API.Credential {
        let current = try await credential(org: org, vault: vault, id: id)
        let type = current.auth.type
        var secret: String?
        var expiresAt: Date?
        var refresh: JSONValue?
        var oauthChanged = false
        if let auth = body["auth"], auth != .null {
            guard auth["type"]?.stringValue == type else {
                throw DroverError(.invalidArgument, "auth.type: a credential's type cannot change (this one is \(type))")
            }
            if auth["mcp_server_url"] != nil { throw DroverError(.invalidArgument, "auth.mcp_server_url cannot change") }
            if type == "mcp_oauth" {
                let stored = try await sealedCredential(id: id, key: try VaultKey.required(key))
                let updated = try MCPOAuthCredential.updating(auth, secrets: stored.secrets, refresh: stored.refresh, expiresAt: stored.expiresAt)
                (secret, refresh, expiresAt, oauthChanged) = (updated.secrets.text, updated.refresh, updated.expiresAt, true)
            } else if let given = auth["token"], given != .null {
                guard let text = given.stringValue, !text.isEmpty else { throw DroverError(.invalidArgument, "auth.token: a non-empty string") }
                secret = text
            }
        }
        let sealing = secret == nil ? nil : try VaultKey.required(key)
        return try await written(
            """
            UPDATE drover.vault_credentials c
               SET display_name = CASE WHEN $4 THEN $5 ELSE c.display_name END,
                   metadata = jsonb_strip_nulls(c.metadata || coalesce($6::jsonb, '{}')),
                   secret = CASE WHEN $7::text IS NULL THEN c.secret ELSE drover.vault_seal($7, $8) END,
                   key_id = CASE WHEN $7::text IS NULL THEN c.key_id ELSE drover.vault_key_id($8) END,
                   expires_at = CASE WHEN $9 THEN $10 ELSE c.expires_at END,
                   refresh = CASE WHEN $9 THEN $11::jsonb ELSE c.refresh END,
                   token_version = c.token_version + CASE WHEN $7::text IS NULL THEN 0 ELSE 1 END,
                   updated_at = now()
             WHERE c.id = $1 AND c.vault_id = $2 AND c.org_id = $3
            RETURNING drover.api_credential_json(c)::text
            """,
            [id, vault, org, body["display_name"] != nil, body["display_name"]?.stringValue, Self.text(body["metadata"]), secret, sealing,
             oauthChanged, expiresAt, refresh.map(\.text)],
            missing: "no credential \(id) in vault \(vault)")
    }

    /// An mcp_oauth credential's stored parts, its secrets opened with `key`.
    func sealedCredential(id: String, key: String) async throws -> (secrets: JSONValue, refresh: JSONValue?, expiresAt: Date?) {
        try await mappingErrors {
            guard let row = try await pool.query(
                "SELECT drover.vault_open(secret, key_id, $2), refresh::text, expires_at FROM drover.vault_credentials WHERE id = $1", [id, key]
            ).first else { throw DroverError(.notFound, "no credential \(id)") }
            return (try JSONValue.parse(try row.decode(0) as String), try row.decodeIfPresent(1, as: String.self).map { try JSONValue.parse($0) },
                    try row.decodeIfPresent(2, as: Date.self))
        }
    }

    public func archiveCredential(org: String, vault: String, id: String) async throws -> API.Credential {
        try await one(
            """
            UPDATE drover.vault_credentials c SET archived_at = coalesce(c.archived_at, now()), updated_at = now()
             WHERE c.id = $1 AND c.vault_id = $2 AND c.org_id = $3 RETURNING drover.api_credential_json(c)::text
            """, [id, vault, org], missing: "no credential \(id) in vault \(vault)")
    }

    public func deleteCredential(org: String, vault: String, id: String) async throws -> API.Deleted {
        let deleted = try await mappingErrors {
            try await pool.query("DELETE FROM drover.vault_credentials WHERE id = $1 AND vault_id = $2 AND org_id = $3 RETURNING id", [id, vault, org])
        }
        guard !deleted.isEmpty else { throw DroverError(.notFound, "no credential \(id) in vault \(vault)") }
        return API.Deleted(id: id, type: "vault_credential_deleted")
    }

    /// Re-seals every secret sealed with `old` under `new`, in one transaction; how many.
    public func rotateVaultKey(old: String, new: String) async throws -> Int {
        try VaultKey.check(new)
        return try await mappingErrors {
            Int(try await pool.query("SELECT drover.vault_rotate_key($1, $2)", [old, new])[0].decode(0) as Int64)
        }
    }
}
