import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Who an API key belongs to.
public struct APIPrincipal: Sendable, Equatable {
    public var keyID: String
    public var orgID: String
    public var operator_: Bool
    /// An environment key's or a work item's sessions token's scope; nil for an API key.
    public var work: WorkQueue.Credential?

    public init(keyID: String, orgID: String, operator_: Bool, work: WorkQueue.Credential? = nil) {
        self.keyID = keyID
        self.orgID = orgID
        self.operator_ = operator_
        self.work = work
    }
}

/// Organisations, API keys and the Managed Agents resources of `drover api`, every query scoped
/// to an organisation: another organisation's id is `not_found`, exactly like a missing one.
/// Postgres composes each resource in one statement (`drover.api_*_json`, migration 0010 on) and
/// the store hands it on as its type (`DroverResources`).
public struct TenantStore: Sendable {
    public let pool: ConnectionPool
    /// Wakes harnesses after user events commit; one per store, so a daemon's requests share it.
    let notifier: PostCommitNotifier
    /// `events.send`, group-committed across the store's requests.
    let sends: UserEventBatcher
    public init(pool: ConnectionPool) {
        self.pool = pool
        notifier = PostCommitNotifier(pool: pool)
        sends = UserEventBatcher(pool: pool)
    }

    // MARK: - Organisations and keys

    /// Creates the organisation if it does not exist; returns its id.
    public func organization(named name: String) async throws -> String {
        try await mappingErrors {
            try await pool.query(
                """
                WITH made AS (INSERT INTO drover.organizations (id, name) VALUES (drover.new_id('org'), $1)
                              ON CONFLICT (name) DO NOTHING RETURNING id)
                SELECT id FROM made UNION ALL SELECT id FROM drover.organizations WHERE name = $1 LIMIT 1
                """, [name])[0].decode(0)
        }
    }

    /// A new key for the organisation: the secret is returned once; only its SHA-256 is stored.
    public func createKey(org name: String, operator_: Bool) async throws -> (id: String, secret: String, org: String) {
        let org = try await organization(named: name)
        let secret = Self.newSecret(prefix: "sk-drover-")
        let id: String = try await mappingErrors {
            try await pool.query(
                """
                INSERT INTO drover.api_keys (id, org_id, key_sha256, hint, operator)
                VALUES (drover.new_id('key'), $1, sha256(convert_to($2, 'UTF8')), $3, $4) RETURNING id
                """, [org, secret, String(secret.suffix(4)), operator_])[0].decode(0)
        }
        return (id, secret, org)
    }

    /// A new secret: `prefix` and 24 random bytes in hex (API keys, environment keys, sessions
    /// tokens; only their SHA-256 is stored).
    static func newSecret(prefix: String) -> String {
        var bytes = [UInt8](repeating: 0, count: 24)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        return prefix + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// What admitting requests decided.
    public enum Admission: Sendable, Equatable {
        /// `granted` requests of this minute's allowance (this one included), valid `secondsLeft`.
        case admitted(APIPrincipal, granted: Int, secondsLeft: Int)
        case unknownKey
        case limited(retryAfter: Int)
    }

    /// Authenticates a key and takes a batch of its organisation's per-minute allowance of `kind`
    /// (`create` or `request`), in one round trip (`drover.api_admit`).
    public func admit(_ secret: String, kind: String) async throws -> Admission {
        try await mappingErrors {
            let rows = try await pool.query(
                "SELECT key_id, org_id, operator, granted, retry_after_s FROM drover.api_admit($1, $2)", [secret, kind])
            guard let row = rows.first else { return .unknownKey }
            let granted: Int = try row.decode(3)
            guard granted > 0 else { return .limited(retryAfter: try row.decode(4)) }
            return .admitted(
                APIPrincipal(keyID: try row.decode(0), orgID: try row.decode(1), operator_: try row.decode(2)), granted: granted,
                secondsLeft: try row.decode(4))
        }
    }

    /// Sets an organisation's per-minute limits.
    public func setLimits(org name: String, createsPerMinute: Int?, requestsPerMinute: Int?) async throws {
        try await mappingErrors {
            try await pool.query(
                """
                UPDATE drover.organizations SET creates_per_minute = coalesce($2, creates_per_minute),
                       requests_per_minute = coalesce($3, requests_per_minute) WHERE name = $1
                """, [name, createsPerMinute, requestsPerMinute])
        }
    }

    // MARK: - Idempotency keys

    public enum IdempotencyState: Sendable, Equatable {
        case new
        case replay(status: Int, body: String)
        case inProgress
        case mismatch
    }

    /// Claims `key` for `request` (method, path and body): see `drover.api_idempotency_begin`.
    public func beginIdempotent(org: String, key: String, request: String) async throws -> IdempotencyState {
        try await mappingErrors {
            let row = try await pool.query("SELECT state, status, response FROM drover.api_idempotency_begin($1, $2, $3)", [org, key, request])[0]
            switch try row.decode(0) as String {
            case "new": return .new
            case "replay": return .replay(status: try row.decode(1), body: try row.decode(2))
            case "in_progress": return .inProgress
            default: return .mismatch
            }
        }
    }

    /// Records the first response to `key` (or frees the key, for a response worth retrying).
    public func endIdempotent(org: String, key: String, status: Int, body: String) async throws {
        try await mappingErrors {
            if status >= 500 {
                try await pool.query("SELECT drover.api_idempotency_abandon($1, $2)", [org, key])
            } else {
                try await pool.query("SELECT drover.api_idempotency_end($1, $2, $3, $4)", [org, key, status, body])
            }
        }
    }

    public func organizationName(id: String) async throws -> String {
        try await mappingErrors { try await pool.query("SELECT name FROM drover.organizations WHERE id = $1", [id])[0].decode(0) }
    }

    // MARK: - Fleet views (operator keys)

    /// The operator views by the name the API gives them.
    public static let fleetViews = ["leases": "drover.leases", "harnesses": "drover.harness_status", "pools": "drover.pool_status",
                                    "queue": "drover.queue_stats", "queue_history": "drover.queue_history"]

    /// Records the queue's depth on the current 15-second mark (once, whichever replica comes first).
    public func sampleQueue() async throws {
        try await mappingErrors { try await pool.query("SELECT drover.sample_queue()") }
    }

    /// An operator view's rows as JSON objects (the same data `drover leases`, `harnesses`, `pools`
    /// and `top` show).
    public func fleet(_ name: String) async throws -> JSONValue {
        guard let view = Self.fleetViews[name] else { throw DroverError(.notFound, "no fleet view \(name)") }
        let rows = try await jsonRows("SELECT coalesce(jsonb_agg(to_jsonb(v)), '[]')::text FROM \(view) v", [])
        return ["data": rows.first ?? .array([])]
    }

    // MARK: - Helpers

    /// Runs a query whose one column is jsonb; each row parsed.
    func jsonRows(_ sql: String, _ parameters: [(any PostgresEncodable)?]) async throws -> [JSONValue] {
        try await mappingErrors {
            try await pool.query(sql, parameters).map { try JSONValue.parse(try $0.decode(0) as String) }
        }
    }

    /// The first row's JSON, for answers that are not a resource (`not_found` without one).
    func one(_ sql: String, _ parameters: [(any PostgresEncodable)?], missing: String) async throws -> JSONValue {
        guard let first = try await jsonRows(sql, parameters).first else { throw DroverError(.notFound, missing) }
        return first
    }

    /// The first row's resource (`not_found`, saying `missing`, without one).
    func one<Resource: APIResource>(_ sql: String, _ parameters: [(any PostgresEncodable)?], missing: String) async throws -> Resource {
        try Resource.decode(render: try await one(sql, parameters, missing: missing) as JSONValue)
    }

    /// A write's resource, rendered and decoded before the write commits (`decode(written:)`): a
    /// request whose result its type cannot hold is refused and leaves nothing behind.
    func written<Resource: APIResource>(_ sql: String, _ parameters: [(any PostgresEncodable)?], missing: String) async throws -> Resource {
        try await mappingErrors {
            try await pool.transaction { connection in
                guard let row = try await connection.query(sql, parameters).first else { throw DroverError(.notFound, missing) }
                return try Resource.decode(written: try JSONValue.parse(try row.decode(0) as String))
            }
        }
    }

    /// Keyset pages: the cursor is the last row's sort key, opaque to clients (base64).
    static func cursor(_ key: String) -> String { Data(key.utf8).base64EncodedString() }
    static func decodeCursor(_ page: String?) throws -> String? {
        guard let page, !page.isEmpty else { return nil }
        guard let data = Data(base64Encoded: page), let key = String(data: data, encoding: .utf8) else {
            throw DroverError(.invalidArgument, "page is not a cursor this API gave")
        }
        return key
    }

    /// Rows of `(json, sort key)`; `limit + 1` were asked for, to know whether a next page exists.
    static func page<Resource>(_ rows: [(Resource, String)], limit: Int) -> APIPage<Resource> {
        let more = rows.count > limit
        let kept = rows.prefix(limit)
        return APIPage(data: kept.map(\.0), nextPage: more ? kept.last.map { cursor($0.1) } : nil)
    }

    func pagedRows<Resource: APIResource>(_ sql: String, _ parameters: [(any PostgresEncodable)?], limit: Int) async throws -> APIPage<Resource> {
        let rows = try await mappingErrors {
            try await pool.query(sql, parameters).map { (try JSONValue.parse(try $0.decode(0) as String), try $0.decode(1) as String) }
        }
        return Self.page(try rows.map { (try Resource.decode(render: $0.0), $0.1) }, limit: limit)
    }

    /// One row of `table` owned by the organisation, rendered by `render` (`not_found` otherwise,
    /// another organisation's row included).
    func owned<Resource: APIResource>(_ table: String, render: String, id: String, org: String, what: String) async throws -> Resource {
        try await one("SELECT \(render)(t)::text FROM \(table) t WHERE t.id = $1 AND t.org_id = $2", [id, org], missing: "no \(what) \(id)")
    }

    /// A keyset page of an organisation's rows of `table` (environments, sessions, …) in creation
    /// order, newest first unless `ascending`, rendered by the SQL function `render`; `filter` may
    /// use parameters from $6 on (`extra`). A table without `archived_at` (runs, webhook
    /// endpoints) is read with `includeArchived` true.
    func byCreation<Resource: APIResource>(
        _ table: String, render: String, org: String, includeArchived: Bool, page: String?, limit: Int,
        filter: String = "TRUE", extra: [(any PostgresEncodable)?] = [], ascending: Bool = false
    ) async throws -> APIPage<Resource> {
        let after = try Self.decodeCursor(page)?.split(separator: "|", maxSplits: 1).map(String.init)
        let (beyond, order) = ascending ? (">", "ASC") : ("<", "DESC")
        return try await pagedRows(
            """
            SELECT \(render)(t)::text, to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '|' || t.id
              FROM \(table) t
             WHERE t.org_id = $1 AND ($2 OR \(includeArchived ? "TRUE" : "t.archived_at IS NULL"))
               AND ($3::timestamp IS NULL OR (t.created_at AT TIME ZONE 'UTC', t.id) \(beyond) ($3::timestamp, $4)) AND \(filter)
             ORDER BY t.created_at \(order), t.id \(order) LIMIT $5
            """, [org, includeArchived, after?.first, after?.last, limit + 1] + extra, limit: limit)
    }

    static func text(_ value: JSONValue?) -> String? { value.flatMap { $0 == .null ? nil : $0.text } }
}
