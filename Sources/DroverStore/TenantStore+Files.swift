import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Files (`client.beta.files`, migration 0019): the organisation's uploads, bytes in Postgres.
extension TenantStore {
    /// A file's bytes, as a download answers them.
    public struct FileContent: Sendable {
        public var filename: String
        public var mimeType: String
        public var bytes: [UInt8]
    }

    /// `expires_in_seconds`, when given, must be 3,600 to 7,776,000 (one hour to ninety days), as the SDK documents.
    public func uploadFile(org: String, filename: String, mimeType: String, bytes: [UInt8], expiresInSeconds: Int?) async throws -> API.File {
        if let expiresInSeconds, !(3_600...7_776_000).contains(expiresInSeconds) {
            throw DroverError(.invalidArgument, "expires_in_seconds must be between 3600 and 7776000")
        }
        // Each upload also drops the bytes of up to 100 of the organisation's expired files: their
        // content is gone for good once they expire, and their storage goes with the next upload.
        return try await one(
            """
            WITH purged AS (
                UPDATE drover.files e SET content = ''::bytea
                 WHERE e.id IN (SELECT x.id FROM drover.files x
                                 WHERE x.org_id = $1 AND x.expires_at <= now() AND octet_length(x.content) > 0 LIMIT 100))
            INSERT INTO drover.files AS f (id, org_id, filename, mime_type, size_bytes, content, expires_at)
            VALUES (drover.new_id('file'), $1, $2, $3, $4, $5::bytea, now() + $6 * interval '1 second')
            RETURNING drover.api_file_json(f)::text
            """, [org, filename, mimeType, bytes.count, Data(bytes), expiresInSeconds], missing: "")
    }

    public func file(org: String, id: String) async throws -> API.File {
        try await one("SELECT drover.api_file_json(f)::text FROM drover.files f WHERE f.id = $1 AND f.org_id = $2", [id, org], missing: "no file \(id)")
    }

    /// Newest first. `ids` (at most 100) answers those files in one page, leaving out what is
    /// not there; `scopeID` keeps the files made in that session.
    public func files(org: String, limit: Int, page: String?, ids: [String]?, scopeID: String?) async throws -> APIPage<API.File> {
        if let ids {
            guard page == nil else { throw DroverError(.invalidArgument, "ids cannot be combined with page") }
            let unique = Array(Set(ids))
            guard unique.count <= 100 else { throw DroverError(.invalidArgument, "ids: at most 100") }
            let rows = try await jsonRows(
                """
                SELECT drover.api_file_json(f)::text FROM drover.files f WHERE f.org_id = $1 AND f.id = ANY ($2::text[])
                 ORDER BY f.created_at DESC, f.id DESC
                """, [org, unique])
            return APIPage(data: try rows.map(API.File.decode(render:)), nextPage: nil)
        }
        var cursor = page
        if let text = cursor, text.hasPrefix("page_") { cursor = String(text.dropFirst(5)) }
        let after = try Self.decodeCursor(cursor)?.split(separator: "|", maxSplits: 1).map(String.init)
        let found: APIPage<API.File> = try await pagedRows(
            """
            SELECT drover.api_file_json(f)::text, to_char(f.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '|' || f.id
              FROM drover.files f
             WHERE f.org_id = $1 AND ($2::text IS NULL OR f.scope_id = $2)
               AND ($3::timestamp IS NULL OR (f.created_at AT TIME ZONE 'UTC', f.id) < ($3::timestamp, $4))
             ORDER BY f.created_at DESC, f.id DESC LIMIT $5
            """, [org, scopeID, after?.first, after?.last, limit + 1], limit: limit)
        // The SDK documents file cursors as `page_…`.
        return APIPage(data: found.data, nextPage: found.nextPage.map { "page_" + $0 })
    }

    /// The bytes of a file that is still downloadable.
    public func fileContent(org: String, id: String) async throws -> FileContent {
        let rows = try await mappingErrors {
            try await pool.query(
                """
                SELECT f.filename, f.mime_type, f.content, f.expires_at IS NULL OR f.expires_at > now()
                  FROM drover.files f WHERE f.id = $1 AND f.org_id = $2
                """, [id, org])
        }
        guard let row = rows.first else { throw DroverError(.notFound, "no file \(id)") }
        guard try row.decode(3) as Bool else { throw DroverError(.notFound, "file \(id) has expired: its content is gone") }
        return FileContent(filename: try row.decode(0), mimeType: try row.decode(1), bytes: Array(try row.decode(2) as Data))
    }

    public func deleteFile(org: String, id: String) async throws -> API.Deleted {
        try await one(
            "DELETE FROM drover.files f WHERE f.id = $1 AND f.org_id = $2 RETURNING jsonb_build_object('type', 'file_deleted', 'id', f.id)::text",
            [id, org], missing: "no file \(id)")
    }
}
