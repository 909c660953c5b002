import DroverCore
import DroverPostgres
import Foundation

/// The MCP credentials of a session's vaults, opened: read by the harness when it connects the
/// agent's MCP servers, never logged, never in an event. (Its repositories, with their tokens,
/// are `SessionStore.repositories`, read when a sandbox is made.)
public struct VaultCredentials: Sendable {
    /// One credential of the session's vaults.
    public struct Credential: Sendable {
        public var id: String
        public var mcpServerURL: String
        public var token: String
        /// An mcp_oauth credential's: when its access token expires (nil: unknown) and how to
        /// refresh it (nil: it cannot be).
        public var expiresAt: Date?
        public var refresh: OAuthRefresh?
        /// The stored token's version, for the compare-and-set of a refresh.
        public var version: Int
    }

    /// The columns `Credential.init(opened:)` reads, of `drover.vault_credentials c`, the key as `$2`.
    static let columns = """
        c.id, c.mcp_server_url, CASE WHEN $2::text IS NULL THEN NULL ELSE drover.vault_open(c.secret, c.key_id, $2) END,
               c.auth_type, c.expires_at, c.refresh::text, c.token_version
        """

    /// How an mcp_oauth credential's access token is refreshed (RFC 6749, section 6).
    public struct OAuthRefresh: Sendable {
        public var tokenEndpoint: String
        public var clientID: String
        /// `none`, `client_secret_basic` or `client_secret_post`.
        public var method: String
        public var clientSecret: String?
        public var refreshToken: String
        public var scope: String?
        public var resource: String?
    }

    /// The credentials of the session's vaults, in `vault_ids` order: the first whose
    /// `mcp_server_url` matches a server is the one used.
    public var credentials: [Credential]

    /// The credential for an MCP server's URL (exact match, ignoring a trailing slash).
    public func credential(for url: String) -> Credential? {
        func bare(_ text: String) -> String { text.hasSuffix("/") ? String(text.dropLast()) : text }
        return credentials.first { bare($0.mcpServerURL) == bare(url) }
    }

    public func token(for url: String) -> String? { credential(for: url)?.token }
}

extension VaultCredentials.Credential {
    /// A credential read with `columns`, its secret opened: a static bearer's token, or an
    /// mcp_oauth's access token and how to refresh it.
    init(opened row: PostgresRow) throws {
        guard let opened = try row.decodeIfPresent(2, as: String.self) else { throw SessionStore.noKey }
        self.init(id: try row.decode(0), mcpServerURL: try row.decode(1), token: opened, expiresAt: try row.decodeIfPresent(4, as: Date.self),
                  refresh: nil, version: try row.decode(6))
        if try row.decode(3) as String == "mcp_oauth" {
            let secrets = try JSONValue.parse(opened)
            token = secrets["access_token"]?.stringValue ?? ""
            if let config = try row.decodeIfPresent(5, as: String.self).map({ try JSONValue.parse($0) }),
               let endpoint = config["token_endpoint"]?.stringValue, let client = config["client_id"]?.stringValue,
               let refreshToken = secrets["refresh_token"]?.stringValue {
                refresh = VaultCredentials.OAuthRefresh(
                    tokenEndpoint: endpoint, clientID: client, method: config["token_endpoint_auth"]?["type"]?.stringValue ?? "none",
                    clientSecret: secrets["client_secret"]?.stringValue, refreshToken: refreshToken,
                    scope: config["scope"]?.stringValue, resource: config["resource"]?.stringValue)
            }
        }
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
                SELECT \(VaultCredentials.columns)
                  FROM drover.sessions s
                 CROSS JOIN LATERAL unnest(s.vault_ids) WITH ORDINALITY AS v(id, n)
                  JOIN drover.vaults vault ON vault.id = v.id AND vault.org_id = s.org_id AND vault.archived_at IS NULL
                  JOIN drover.vault_credentials c ON c.vault_id = v.id AND c.archived_at IS NULL
                 WHERE s.id = $1 ORDER BY v.n, c.created_at, c.id
                """, [session.rawValue, key])
        }
        let credentials = try rows.map { row in try VaultCredentials.Credential(opened: row) }
        return VaultCredentials(credentials: credentials)
    }

    /// Stores a refreshed mcp_oauth access token (and a rotated refresh token), sealed with `key`,
    /// if the credential is still at `version`: two harnesses refreshing at once keep one result.
    /// Returns whether it was stored (false: another refresh won; read the credential again).
    public func storeRefreshedToken(
        credential id: String, version: Int, accessToken: String, expiresAt: Date?, refreshToken: String, key: String
    ) async throws -> Bool {
        try await mappingErrors {
            try await pool.query(
                """
                UPDATE drover.vault_credentials c
                   SET secret = drover.vault_seal(
                           (drover.vault_open(c.secret, c.key_id, $6)::jsonb || jsonb_build_object('access_token', $3::text, 'refresh_token', $5::text))::text, $6),
                       key_id = drover.vault_key_id($6), expires_at = $4, token_version = c.token_version + 1, updated_at = now()
                 WHERE c.id = $1 AND c.token_version = $2 AND c.auth_type = 'mcp_oauth'
                RETURNING c.id
                """, [id, version, accessToken, expiresAt, refreshToken, key]
            ).first != nil
        }
    }

    public static var noKey: DroverError {
        DroverError(.vaultKeyMissing, "the session has sealed secrets and this harness has no vault key (DROVER_VAULT_KEY or DROVER_VAULT_KEY_FILE)")
    }
}

extension SessionStore {
    /// A model's list prices, US dollars per million tokens.
    public struct ModelPrice: Sendable, Equatable {
        public var input: Double
        public var output: Double
        public var cacheRead: Double
        public init(input: Double, output: Double, cacheRead: Double) {
            self.input = input
            self.output = output
            self.cacheRead = cacheRead
        }
    }

    /// What a wake reads beside its first read of the log, in one round trip: the memory stores
    /// attached (in the order they were; a thread's are its session's, whose sandbox it shares),
    /// and the budget (its cap in cents and its model's price,
    /// nil when the model has none) when the session has one.
    public struct WakeSettings: Sendable {
        public var stores: [AttachedStore]
        public var budget: (maxCents: Int64, price: ModelPrice?)?
    }

    public func wakeSettings(_ session: SessionID) async throws -> WakeSettings {
        try await mappingErrors {
            guard let row = try await pool.query(
                """
                SELECT (s.budget #>> '{max_list_cost,amount}')::bigint, p.input_per_mtok::float8, p.output_per_mtok::float8,
                       p.cache_read_per_mtok::float8,
                       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                   'id', r.memory_store_id, 'mount', r.mount_path, 'read_only', r.access = 'read_only',
                                   'name', coalesce(r.store_name, ''), 'description', coalesce(r.store_description, ''),
                                   'instructions', r.instructions) ORDER BY r.created_at, r.id), '[]')::text
                          FROM drover.session_resources r
                         WHERE r.session_id = coalesce(s.parent_session_id, s.id) AND r.type = 'memory_store')
                  FROM drover.sessions s
                  JOIN drover.agents a ON a.id = coalesce(s.run_agent_id, s.agent_id) AND a.version = coalesce(s.run_agent_version, s.agent_version)
                  LEFT JOIN drover.model_prices p ON s.budget IS NOT NULL AND p.model = a.model
                 WHERE s.id = $1
                """, [session.rawValue]).first else { throw DroverError(.notFound, "no session \(session)") }
            guard case .array(let items) = try JSONValue.parse(try row.decode(4) as String) else { throw DroverError(.database, "malformed stores") }
            let stores = items.map { item in
                AttachedStore(storeID: item["id"]?.stringValue ?? "", mountPath: item["mount"]?.stringValue ?? "",
                              readOnly: item["read_only"] == .bool(true), name: item["name"]?.stringValue ?? "",
                              description: item["description"]?.stringValue ?? "", instructions: item["instructions"]?.stringValue)
            }
            let budget = try row.decodeIfPresent(0, as: Int64.self).map { cents in
                (maxCents: cents, price: try row.decodeIfPresent(1, as: Double.self).map {
                    ModelPrice(input: $0, output: try row.decode(2), cacheRead: try row.decode(3))
                })
            }
            return WakeSettings(stores: stores, budget: budget)
        }
    }
}
