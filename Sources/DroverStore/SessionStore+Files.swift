import DroverCore
import DroverPostgres
import Foundation

/// A session's files as its harness sees them: what to mount in its sandbox, the bytes, and the
/// turn's output files stored back (issue #23, item 3).
extension SessionStore {
    /// The session's `file` resources: file id and mount path, in the order they were added. A
    /// dream's session (migration 0023) also gets the transcripts of the sessions it reads, as
    /// files `file_transcript_<session id>` at `/mnt/session/transcripts/<session id>.md`; and
    /// every session the files of its agent's skills, read-only at `/mnt/skills/<name>/…`
    /// (migration 0024).
    public func sessionFiles(_ session: SessionID) async throws -> [(fileID: String, mountPath: String)] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT file_id, mount_path FROM (
                    SELECT r.file_id, r.mount_path, 0 AS kind, r.created_at, r.id FROM drover.session_resources r
                     WHERE r.session_id = $1 AND r.type = 'file'
                    UNION ALL
                    SELECT \(Self.transcriptPrefix) || t.id, '/mnt/session/transcripts/' || t.id || '.md', 1, NULL, t.id
                      FROM drover.sessions s JOIN drover.dreams d ON d.id = s.dream_id, unnest(d.session_ids) AS t(id)
                     WHERE s.id = $1
                    UNION ALL
                    SELECT f.id, '/mnt/skills/' || v.name || f.path, 2, NULL, v.name || f.path
                      FROM drover.sessions s JOIN drover.agents a
                        ON a.id = coalesce(s.run_agent_id, s.agent_id) AND a.version = coalesce(s.run_agent_version, s.agent_version)
                     CROSS JOIN LATERAL jsonb_array_elements(coalesce(a.config -> 'skills', '[]')) AS k(skill)
                      JOIN drover.skills sk ON sk.id = k.skill ->> 'skill_id' AND sk.org_id = s.org_id
                      JOIN drover.skill_versions v ON v.skill_id = sk.id AND v.id = k.skill ->> 'version'
                      JOIN drover.skill_files f ON f.skill_id = v.skill_id AND f.version_id = v.id
                     WHERE s.id = $1
                ) f ORDER BY kind, created_at, id
                """, [session.rawValue]
            ).map { (try $0.decode(0), try $0.decode(1)) }
        }
    }

    /// The file id a dream's transcript of a session goes by in its sandbox (an SQL literal).
    static let transcriptPrefix = "'file_transcript_'"

    /// A file's bytes, if it is a downloadable file of the session's organisation (nil: deleted or
    /// expired); for a dream's transcript, the transcript as it reads now (nil: the session is
    /// gone); for a skill's file, its bytes.
    public func sessionFileBytes(_ fileID: String, session: SessionID) async throws -> [UInt8]? {
        let rows = try await mappingErrors {
            try await pool.query(
                """
                SELECT f.content FROM drover.files f JOIN drover.sessions s ON s.org_id = f.org_id
                 WHERE f.id = $1 AND s.id = $2 AND (f.expires_at IS NULL OR f.expires_at > now())
                UNION ALL
                SELECT convert_to(drover.session_transcript(t.id), 'UTF8')
                  FROM drover.sessions s JOIN drover.dreams d ON d.id = s.dream_id
                  JOIN drover.sessions t ON t.org_id = s.org_id AND \(Self.transcriptPrefix) || t.id = $1 AND t.id = ANY(d.session_ids)
                 WHERE s.id = $2
                UNION ALL
                SELECT f.content FROM drover.skill_files f JOIN drover.skills sk ON sk.id = f.skill_id
                  JOIN drover.sessions s ON s.org_id = sk.org_id
                 WHERE f.id = $1 AND s.id = $2
                """, [fileID, session.rawValue])
        }
        return try rows.first.map { Array(try $0.decode(0) as Data) }
    }

    /// Stores an output file of the session (a file scoped to it, by name: a later turn's file of
    /// the same name replaces its content and keeps its id), only while `lease` is current, so a
    /// harness that lost the session writes nothing. Returns whether it was written.
    @discardableResult
    public func storeOutput(_ lease: Lease, name: String, bytes: [UInt8]) async throws -> Bool {
        try await mappingErrors {
            try await pool.query(
                """
                INSERT INTO drover.files AS f (id, org_id, filename, mime_type, size_bytes, content, scope_id)
                SELECT drover.new_id('file'), s.org_id, $4, $5, $6, $7, s.id
                  FROM drover.sessions s WHERE s.id = $1 AND s.lease_owner = $2 AND s.lease_epoch = $3 AND s.status = 'running'
                ON CONFLICT (scope_id, filename) WHERE scope_id IS NOT NULL
                DO UPDATE SET content = excluded.content, size_bytes = excluded.size_bytes, mime_type = excluded.mime_type, created_at = now()
                RETURNING f.id
                """, [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, name, Self.mimeType(name), bytes.count, Data(bytes)]
            ).first != nil
        }
    }

    /// A content type from the name's extension, for downloads; anything else is bytes.
    static func mimeType(_ name: String) -> String {
        let types = [
            "txt": "text/plain", "md": "text/markdown", "csv": "text/csv", "json": "application/json", "html": "text/html",
            "xml": "application/xml", "pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
            "gif": "image/gif", "svg": "image/svg+xml", "zip": "application/zip", "py": "text/x-python", "js": "text/javascript",
        ]
        let ext = name.split(separator: ".").last.map { $0.lowercased() } ?? ""
        return name.contains(".") ? types[ext] ?? "application/octet-stream" : "application/octet-stream"
    }
}
