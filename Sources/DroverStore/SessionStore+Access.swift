import DroverCore
import DroverPostgres

/// The MCP credentials of a session's vaults, opened: read by the harness when it connects the
/// agent's MCP servers, never logged, never in an event. (Its repositories, with their tokens,
/// are `SessionStore.repositories`, read when a sandbox is made.)
public struct VaultCredentials: Sendable {
    /// The static bearer credentials of the session's vaults, in `vault_ids` order: the first
    /// whose `mcp_server_url` matches a server is the one used.
    public var credentials: [(mcpServerURL: String, token: String)]

    /// The credential for an MCP server's URL (exact match, ignoring a trailing slash).
    public func token(for url: String) -> String? {
        func bare(_ text: String) -> String { text.hasSuffix("/") ? String(text.dropLast()) : text }
        return credentials.first { bare($0.mcpServerURL) == bare(url) }?.token
    }
}

extension SessionStore {
    /// The session's repositories (tokens opened with `key`).
    public func repositories(_ session: SessionID, key: String?) async throws -> [RepositoryResource] {
        let rows = try await mappingErrors {
            try await pool.query(
                """
                SELECT r.url, r.mount_path, r.checkout::text, r.secret IS NOT NULL,
                       CASE WHEN r.secret IS NULL OR $2::text IS NULL THEN NULL ELSE drover.vault_open(r.secret, r.key_id, $2) END
                  FROM drover.session_resources r WHERE r.session_id = $1 AND r.type = 'github_repository' ORDER BY r.created_at, r.id
                """, [session.rawValue, key])
        }
        return try rows.map { row in
            let sealed: Bool = try row.decode(3)
            let token = try row.decodeIfPresent(4, as: String.self)
            if sealed && token == nil { throw Self.noKey }
            let checkout = try row.decodeIfPresent(2, as: String.self).flatMap { try? JSONValue.parse($0) }
            var fields: [String: JSONValue] = ["url": .string(try row.decode(0)), "mount_path": .string(try row.decode(1))]
            if let checkout { fields["checkout"] = checkout }
            if let token { fields["authorization_token"] = .string(token) }
            do {
                return try RepositoryResource(json: .object(fields))
            } catch let error as RepositoryResource.Invalid {
                throw DroverError(.invalidArgument, "a stored repository is invalid: \(error.message)")
            }
        }
    }

    /// The MCP credentials of the session's vaults (opened with `key`).
    public func credentials(_ session: SessionID, key: String?) async throws -> VaultCredentials {
        let rows = try await mappingErrors {
            try await pool.query(
                """
                SELECT c.mcp_server_url, CASE WHEN $2::text IS NULL THEN NULL ELSE drover.vault_open(c.secret, c.key_id, $2) END
                  FROM drover.sessions s
                 CROSS JOIN LATERAL unnest(s.vault_ids) WITH ORDINALITY AS v(id, n)
                  JOIN drover.vaults vault ON vault.id = v.id AND vault.org_id = s.org_id AND vault.archived_at IS NULL
                  JOIN drover.vault_credentials c ON c.vault_id = v.id AND c.archived_at IS NULL
                 WHERE s.id = $1 ORDER BY v.n, c.created_at, c.id
                """, [session.rawValue, key])
        }
        let credentials = try rows.map { row -> (mcpServerURL: String, token: String) in
            guard let token = try row.decodeIfPresent(1, as: String.self) else { throw Self.noKey }
            return (try row.decode(0), token)
        }
        return VaultCredentials(credentials: credentials)
    }

    static var noKey: DroverError {
        DroverError(.vaultKeyMissing, "the session has sealed secrets and this harness has no vault key (DROVER_VAULT_KEY or DROVER_VAULT_KEY_FILE)")
    }
}
