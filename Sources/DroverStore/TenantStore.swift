import DroverCore
import DroverPostgres
import Foundation

/// Who an API key belongs to.
public struct APIPrincipal: Sendable, Equatable {
    public var keyID: String
    public var orgID: String
    public var operator_: Bool
}

/// A page of a list: Managed Agents' `{data, next_page}`.
public struct APIPage: Sendable {
    public var data: [JSONValue]
    public var nextPage: String?
    public var json: JSONValue { ["data": .array(data), "next_page": nextPage.map(JSONValue.string) ?? .null] }
}

/// Organisations, API keys and the Managed Agents resources of `drover api`, every query scoped
/// to an organisation: another organisation's id is `not_found`, exactly like a missing one.
/// Resource JSON is rendered in SQL (`drover.api_*_json`, migration 0010).
public struct TenantStore: Sendable {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

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
        var bytes = [UInt8](repeating: 0, count: 24)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        let secret = "sk-drover-" + bytes.map { String(format: "%02x", $0) }.joined()
        let id: String = try await mappingErrors {
            try await pool.query(
                """
                INSERT INTO drover.api_keys (id, org_id, key_sha256, hint, operator)
                VALUES (drover.new_id('key'), $1, sha256(convert_to($2, 'UTF8')), $3, $4) RETURNING id
                """, [org, secret, String(secret.suffix(4)), operator_])[0].decode(0)
        }
        return (id, secret, org)
    }

    /// The principal of a key, or nil for an unknown or revoked one.
    public func authenticate(_ secret: String) async throws -> APIPrincipal? {
        try await mappingErrors {
            let rows = try await pool.query(
                "SELECT id, org_id, operator FROM drover.api_keys WHERE key_sha256 = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL",
                [secret])
            guard let row = rows.first else { return nil }
            return APIPrincipal(keyID: try row.decode(0), orgID: try row.decode(1), operator_: try row.decode(2))
        }
    }

    // MARK: - Helpers

    /// Runs a query whose one column is jsonb; each row parsed.
    func jsonRows(_ sql: String, _ parameters: [(any PostgresEncodable)?]) async throws -> [JSONValue] {
        try await mappingErrors {
            try await pool.query(sql, parameters).map { try JSONValue.parse(try $0.decode(0) as String) }
        }
    }

    func one(_ sql: String, _ parameters: [(any PostgresEncodable)?], missing: String) async throws -> JSONValue {
        guard let first = try await jsonRows(sql, parameters).first else { throw DroverError(.notFound, missing) }
        return first
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
    static func page(_ rows: [(JSONValue, String)], limit: Int) -> APIPage {
        let more = rows.count > limit
        let kept = rows.prefix(limit)
        return APIPage(data: kept.map(\.0), nextPage: more ? kept.last.map { cursor($0.1) } : nil)
    }

    func pagedRows(_ sql: String, _ parameters: [(any PostgresEncodable)?], limit: Int) async throws -> APIPage {
        let rows = try await mappingErrors {
            try await pool.query(sql, parameters).map { (try JSONValue.parse(try $0.decode(0) as String), try $0.decode(1) as String) }
        }
        return Self.page(rows, limit: limit)
    }

    static func text(_ value: JSONValue?) -> String? { value.flatMap { $0 == .null ? nil : $0.text } }
}
