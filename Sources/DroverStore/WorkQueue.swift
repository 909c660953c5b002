import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// The work queue of self-hosted environments (migration 0017): the items that tell the SDK's
/// `EnvironmentWorker` which sessions need it, the environment keys workers poll with, and the
/// per-item sessions tokens a poll hands out. Claiming is `FOR UPDATE SKIP LOCKED`; a heartbeat is
/// a compare-and-set on the last heartbeat, so two workers can never both hold an item's lease.
public struct WorkQueue: Sendable {
    public let pool: ConnectionPool
    /// The lease a heartbeat grants when the worker asks for none, and the bounds of what it may ask.
    public var defaultTTL: Int
    public var ttlRange: ClosedRange<Int>

    /// The JSON-row and paging helpers the tenant store's resources use.
    private var store: TenantStore { TenantStore(pool: pool) }

    public init(pool: ConnectionPool, defaultTTL: Int = 30, ttlRange: ClosedRange<Int> = 2...600) {
        self.pool = pool
        self.defaultTTL = defaultTTL
        self.ttlRange = ttlRange
    }

    /// Who an environment key or a sessions token speaks for.
    public enum Credential: Sendable, Equatable {
        /// An environment key: its environment's work endpoints and sessions.
        case environment(keyID: String, org: String, environment: String)
        /// A sessions token: one work item and its session.
        case workItem(org: String, environment: String, work: String, session: String)
    }

    /// What Postgres notifies (with the environment's id) when an item becomes pollable.
    public static let channel = "drover_work"

    /// Secrets of environment keys and sessions tokens start so (API keys: `sk-drover-` and hex).
    public static let environmentKeyPrefix = "sk-drover-env-"
    public static let sessionsTokenPrefix = "sk-drover-work-"

    public static func isWorkCredential(_ secret: String) -> Bool {
        secret.hasPrefix(environmentKeyPrefix) || secret.hasPrefix(sessionsTokenPrefix)
    }

    // MARK: - Credentials

    /// A new key for a self-hosted environment of the organisation named `org` (any organisation
    /// when nil); the secret is returned once, only its SHA-256 is kept.
    public func createEnvironmentKey(environment: String, org: String?) async throws -> (id: String, secret: String) {
        let secret = TenantStore.newSecret(prefix: Self.environmentKeyPrefix)
        let rows = try await mappingErrors {
            try await pool.query(
                """
                INSERT INTO drover.environment_keys (id, environment_id, org_id, key_sha256, hint)
                SELECT drover.new_id('ekey'), e.id, e.org_id, sha256(convert_to($2, 'UTF8')), right($2, 4)
                  FROM drover.environments e JOIN drover.organizations o ON o.id = e.org_id
                 WHERE e.id = $1 AND ($3::text IS NULL OR o.name = $3) AND e.kind = 'self_hosted'
                RETURNING id
                """, [environment, secret, org])
        }
        guard let row = rows.first else {
            throw DroverError(.notFound, "no self_hosted environment \(environment)\(org.map { " in organisation \($0)" } ?? "")")
        }
        return (try row.decode(0), secret)
    }

    /// Revokes an environment key; its next request is refused.
    public func revokeEnvironmentKey(id: String) async throws {
        let rows = try await mappingErrors {
            try await pool.query("UPDATE drover.environment_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id", [id])
        }
        if rows.isEmpty { throw DroverError(.notFound, "no environment key \(id)") }
    }

    /// The environment key or live sessions token `secret` is, or nil.
    public func credential(_ secret: String) async throws -> Credential? {
        try await mappingErrors {
            if secret.hasPrefix(Self.environmentKeyPrefix) {
                let rows = try await pool.query(
                    """
                    SELECT k.id, k.org_id, k.environment_id FROM drover.environment_keys k
                     WHERE k.key_sha256 = sha256(convert_to($1, 'UTF8')) AND k.revoked_at IS NULL
                    """, [secret])
                guard let row = rows.first else { return nil }
                return .environment(keyID: try row.decode(0), org: try row.decode(1), environment: try row.decode(2))
            }
            guard secret.hasPrefix(Self.sessionsTokenPrefix) else { return nil }
            let rows = try await pool.query(
                """
                SELECT i.org_id, i.environment_id, i.id, i.session_id FROM drover.work_items i
                 WHERE i.token_sha256 = sha256(convert_to($1, 'UTF8')) AND i.state <> 'stopped'
                """, [secret])
            guard let row = rows.first else { return nil }
            return .workItem(org: try row.decode(0), environment: try row.decode(1), work: try row.decode(2), session: try row.decode(3))
        }
    }

    /// The environment a session runs in, if it is the organisation's.
    public func environment(ofSession session: String, org: String) async throws -> String? {
        try await mappingErrors {
            try await pool.query("SELECT environment_id FROM drover.sessions WHERE id = $1 AND org_id = $2", [session, org]).first?.decode(0)
        }
    }

    // MARK: - The worker's calls

    /// What a poll handed out: the item (with its `secret`), and whether it had been handed out
    /// before without an acknowledgement.
    public struct Claim: Sendable {
        public var item: JSONValue
        public var reclaimed: Bool
    }

    /// Hands out the oldest pollable item, or nil: the item carries `secret`, URL-safe base64 of
    /// `{"sessions_token": …}`, a bearer for this item and its session only. `expired`: leases that
    /// had run out, put back in the queue by this poll.
    public func poll(environment: String, worker: String?, reclaimOlderThanMs: Int) async throws -> (claim: Claim?, expired: Int) {
        let token = TenantStore.newSecret(prefix: Self.sessionsTokenPrefix)
        let row = try await mappingErrors {
            try await pool.query(
                """
                SELECT item::text, reclaimed, expired
                  FROM drover.work_poll($1, $2, $3, sha256(convert_to($4, 'UTF8')))
                """, [environment, worker, reclaimOlderThanMs, token])[0]
        }
        let expired: Int = try row.decode(2)
        guard let text = try row.decodeIfPresent(0, as: String.self) else { return (nil, expired) }
        guard case .object(var item) = try JSONValue.parse(text) else { throw DroverError(.database, "work_poll returned no object") }
        item["secret"] = .string(Self.secret(sessionsToken: token))
        return (Claim(item: .object(item), reclaimed: try row.decodeIfPresent(1, as: Bool.self) ?? false), expired)
    }

    /// The poll response's `secret`: what the SDK's worker decodes for its sessions token.
    static func secret(sessionsToken: String) -> String {
        let payload = JSONValue.object(["version": 1, "sessions_token": .string(sessionsToken)]).text
        return Data(payload.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public func ack(environment: String, work: String) async throws -> JSONValue {
        try await store.one("SELECT drover.work_ack($1, $2, $3)::text", [environment, work, defaultTTL], missing: "no work item \(work)")
    }

    /// A heartbeat's outcome: the lease as the SDK's heartbeat response shows it, and whether the
    /// expected last heartbeat matched (false: answer 412 with `lease` as the current state).
    public func heartbeat(environment: String, work: String, expected: String?, desiredTTL: Int?) async throws -> (lease: JSONValue, matched: Bool) {
        let ttl = min(max(desiredTTL ?? defaultTTL, ttlRange.lowerBound), ttlRange.upperBound)
        let row = try await mappingErrors {
            try await pool.query("SELECT lease::text, matched FROM drover.work_heartbeat($1, $2, $3, $4)", [environment, work, expected, ttl])[0]
        }
        return (try JSONValue.parse(try row.decode(0) as String), try row.decode(1))
    }

    /// Stops an item (`force`: at once; else it is asked to stop). A stopped item: `conflict`.
    public func stop(environment: String, work: String, force: Bool) async throws -> JSONValue {
        let rows = try await mappingErrors {
            try await pool.query(
                """
                SELECT drover.api_work_json(s)::text
                  FROM drover.work_items i CROSS JOIN LATERAL drover.work_stop(i.id, $3) s
                 WHERE i.id = $2 AND i.environment_id = $1 AND s.id IS NOT NULL
                """, [environment, work, force])
        }
        if let row = rows.first { return try JSONValue.parse(try row.decode(0) as String) }
        _ = try await retrieve(environment: environment, work: work)  // not_found when it is not this environment's
        throw DroverError(.conflict, "work item \(work) is stopped already")
    }

    // MARK: - Reading and metadata

    public func retrieve(environment: String, work: String) async throws -> API.Work {
        try await store.one(
            "SELECT drover.api_work_json(i)::text FROM drover.work_items i WHERE i.id = $1 AND i.environment_id = $2", [work, environment],
            missing: "no work item \(work)")
    }

    /// Items of the environment, newest first, in keyset pages.
    public func list(environment: String, limit: Int, page: String?) async throws -> APIPage<API.Work> {
        let after = try TenantStore.decodeCursor(page)?.split(separator: "|", maxSplits: 1).map(String.init)
        return try await store.pagedRows(
            """
            SELECT drover.api_work_json(i)::text, to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '|' || i.id
              FROM drover.work_items i
             WHERE i.environment_id = $1
               AND ($2::timestamp IS NULL OR (i.created_at AT TIME ZONE 'UTC', i.id) < ($2::timestamp, $3))
             ORDER BY i.created_at DESC, i.id DESC LIMIT $4
            """, [environment, after?.first, after?.last, limit + 1], limit: limit)
    }

    /// Patches metadata: a string upserts its key, null removes it.
    public func update(environment: String, work: String, metadata: JSONValue) async throws -> JSONValue {
        guard case .object(let patch) = metadata else { throw DroverError(.invalidArgument, "metadata: an object is required") }
        for (key, value) in patch {
            switch value {
            case .string, .null: continue
            default: throw DroverError(.invalidArgument, "metadata.\(key): a string, or null to remove it")
            }
        }
        return try await store.one(
            """
            UPDATE drover.work_items i
               SET metadata = (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(i.metadata || $3::jsonb) AS m(k, v)
                                WHERE v <> 'null'::jsonb)
             WHERE i.id = $1 AND i.environment_id = $2
            RETURNING drover.api_work_json(i)::text
            """, [work, environment, metadata.text], missing: "no work item \(work)")
    }

    /// The SDK's `work_queue_stats`: waiting items, handed-out ones, the oldest, and the workers
    /// that polled in the last 30 seconds (the operators' `drover.work_queue_stats`, for one
    /// environment).
    public func stats(environment: String) async throws -> JSONValue {
        try await store.one(
            """
            SELECT jsonb_build_object('type', 'work_queue_stats', 'depth', v.depth, 'pending', v.pending,
                                      'oldest_queued_at', drover.api_time(v.oldest_queued_at), 'workers_polling', v.workers_polling)::text
              FROM drover.work_queue_stats v WHERE v.environment_id = $1
            """, [environment], missing: "no environment \(environment)")
    }

    /// Whether the environment is the organisation's and self-hosted (`not_found` for another
    /// organisation's, `invalid_argument` for a cloud one).
    public func checkEnvironment(_ environment: String, org: String) async throws {
        let rows = try await mappingErrors {
            try await pool.query("SELECT kind FROM drover.environments WHERE id = $1 AND org_id = $2", [environment, org])
        }
        guard let kind: String = try rows.first?.decode(0) else { throw DroverError(.notFound, "no environment \(environment)") }
        guard kind == "self_hosted" else {
            throw DroverError(.invalidArgument, "environment \(environment) is not self_hosted: it has no work queue")
        }
    }

    /// Operators: items by state with their lease's age, and queue depth per environment.
    public func fleet() async throws -> JSONValue {
        let items = try await store.one(
            "SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY v.created_at), '[]')::text FROM drover.work_status v", [], missing: "")
        let queues = try await store.one(
            "SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY v.name), '[]')::text FROM drover.work_queue_stats v", [], missing: "")
        return ["data": items, "queues": queues]
    }

    /// How `store` is attached to `session` (`read_write`, `read_only`), or nil when it is not.
    /// Whether the session's agent version names the skill (its worker downloads it).
    public func skillNamed(_ skill: String, session: String) async throws -> Bool {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT 1 FROM drover.sessions s JOIN drover.agents a ON a.id = s.agent_id AND a.version = s.agent_version
                 WHERE s.id = $1 AND coalesce(a.config -> 'skills', '[]') @> jsonb_build_array(jsonb_build_object('skill_id', $2::text))
                """, [session, skill]).first != nil
        }
    }

    public func storeAccess(store: String, session: String) async throws -> String? {
        try await mappingErrors {
            try await pool.query(
                "SELECT access FROM drover.session_resources WHERE session_id = $1 AND memory_store_id = $2 AND type = 'memory_store'",
                [session, store]).first?[0]
        }
    }
}
