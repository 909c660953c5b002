import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Skills and their versions, as `/v1/skills` serves them (issue #23, item 4; migration 0024).
extension TenantStore {
    /// A new skill from an upload (`SkillBundle`); `displayName` defaults to the skill's name.
    public func createSkill(org: String, displayName: String?, files: [(filename: String, bytes: [UInt8])]) async throws -> API.Skill {
        if let displayName {
            guard (1...255).contains(displayName.count), !displayName.contains("\n") else {
                throw DroverError(.invalidArgument, "display_name: one line of 1 to 255 characters")
            }
        }
        let bundle = try SkillBundle(files: files)
        let id = try await upload(org: org, skill: nil, displayName: displayName, bundle).skill
        return try await skill(org: org, id: id)
    }

    /// A new version of a skill (its SKILL.md must give the skill's name); it becomes the latest.
    public func createSkillVersion(org: String, skill: String, files: [(filename: String, bytes: [UInt8])]) async throws -> API.SkillVersion {
        let bundle = try SkillBundle(files: files)
        let version = try await upload(org: org, skill: skill, displayName: nil, bundle).version
        return try await skillVersion(org: org, skill: skill, version: version)
    }

    private func upload(org: String, skill: String?, displayName: String?, _ bundle: SkillBundle) async throws -> (skill: String, version: String) {
        try await mappingErrors {
            let row = try await pool.query(
                // The contents as bytea's hex text in a text[] (cast to bytea[] in SQL).
                "SELECT skill_id, version_id FROM drover.skill_upload($1, $2, $3, $4, $5, $6::text[], $7::text[]::bytea[])",
                [org, skill, displayName, bundle.name, bundle.description, bundle.files.map(\.path), bundle.files.map { Data($0.bytes).postgresText }])[0]
            return (try row.decode(0), try row.decode(1))
        }
    }

    public func skill(org: String, id: String) async throws -> API.Skill {
        try await owned("drover.skills", render: "drover.api_skill_json", id: id, org: org, what: "skill")
    }

    /// Newest first. `source` `custom` is every skill here; `anthropic` none (Drover has no
    /// Anthropic-managed skills).
    public func skills(org: String, limit: Int, page: String?, source: String?) async throws -> APIPage<API.Skill> {
        switch source {
        case nil, "custom": break
        case "anthropic": return APIPage(data: [], nextPage: nil)
        default: throw DroverError(.invalidArgument, "source must be custom or anthropic")
        }
        return try await byCreation("drover.skills", render: "drover.api_skill_json", org: org, includeArchived: true, page: page, limit: limit)
    }

    /// Deletes a skill with all its versions; agents that pinned one mount nothing for it since.
    public func deleteSkill(org: String, id: String) async throws -> API.Deleted {
        _ = try await skill(org: org, id: id)
        try await mappingErrors { _ = try await pool.query("DELETE FROM drover.skills WHERE id = $1 AND org_id = $2", [id, org]) }
        return API.Deleted(id: id, type: "skill_deleted")
    }

    /// A version by id, or `latest`.
    public func skillVersion(org: String, skill: String, version: String) async throws -> API.SkillVersion {
        try await one(
            """
            SELECT drover.api_skill_version_json(v)::text FROM drover.skill_versions v JOIN drover.skills s ON s.id = v.skill_id
             WHERE s.id = $1 AND s.org_id = $2 AND v.id = CASE WHEN $3 = 'latest' THEN s.latest_version_id ELSE $3 END
            """, [skill, org, version], missing: "no version \(version) of skill \(skill)")
    }

    /// Newest first, keyset pages by version id.
    public func skillVersions(org: String, skill: String, limit: Int, page: String?) async throws -> APIPage<API.SkillVersion> {
        _ = try await self.skill(org: org, id: skill)
        let before = try Self.decodeCursor(page)
        return try await pagedRows(
            """
            SELECT drover.api_skill_version_json(v)::text, v.id FROM drover.skill_versions v
             WHERE v.skill_id = $1 AND ($2::text IS NULL OR v.id::numeric < $2::numeric) ORDER BY v.id::numeric DESC LIMIT $3
            """, [skill, before, limit + 1], limit: limit)
    }

    /// Deletes a version; the latest becomes the newest left. A skill's only version cannot be
    /// deleted (a skill always has one): delete the skill.
    public func deleteSkillVersion(org: String, skill: String, version: String) async throws -> API.Deleted {
        let resolved = try await skillVersion(org: org, skill: skill, version: version).id
        try await mappingErrors {
            try await pool.transaction { connection in
                let count = try await connection.query("SELECT count(*)::int FROM drover.skill_versions WHERE skill_id = $1", [skill])[0].decode(0) as Int
                guard count > 1 else {
                    throw DroverError(.invalidArgument, "version \(resolved) is the only version of skill \(skill): delete the skill instead")
                }
                _ = try await connection.query("DELETE FROM drover.skill_versions WHERE skill_id = $1 AND id = $2", [skill, resolved])
                _ = try await connection.query(
                    """
                    UPDATE drover.skills SET latest_version_id = (SELECT max(id::numeric)::text FROM drover.skill_versions WHERE skill_id = $1),
                                             updated_at = now() WHERE id = $1
                    """, [skill])
            }
        }
        return API.Deleted(id: resolved, type: "skill_version_deleted")
    }

    /// A version's files as a zip archive under the skill's folder (`<name>/SKILL.md`, …).
    public func skillArchive(org: String, skill: String, version: String) async throws -> (name: String, bytes: [UInt8]) {
        let found = try await skillVersion(org: org, skill: skill, version: version)
        let name = found.name
        let files: [(path: String, bytes: [UInt8])] = try await mappingErrors {
            try await pool.query(
                "SELECT path, content FROM drover.skill_files WHERE skill_id = $1 AND version_id = $2 ORDER BY path",
                [skill, found.id]
            ).map { (name + (try $0.decode(0) as String), Array(try $0.decode(1) as Data)) }
        }
        return (name, ZipArchive.stored(files))
    }

    /// An agent's `skills`: `[{type: custom, skill_id, version}]`, each a skill of the
    /// organisation, `version` a version id or `latest` (the default), resolved to the version
    /// it names now, so an agent version always runs the same files. At most 20, no skill twice.
    func resolvedSkills(org: String, _ value: JSONValue?) async throws -> JSONValue? {
        guard let value, value != .null else { return nil }
        guard case .array(let items) = value, items.count <= 20 else { throw DroverError(.invalidArgument, "skills: an array of at most 20 skills") }
        var resolved: [JSONValue] = []
        var seen = Set<String>()
        for item in items {
            guard let type = item["type"]?.stringValue, let skill = item["skill_id"]?.stringValue else {
                throw DroverError(.invalidArgument, "skills[]: {type: custom, skill_id, version} is required")
            }
            guard type == "custom" else { throw DroverError(.invalidArgument, "skills[]: Drover has no Anthropic-managed skills; upload it as a custom skill") }
            guard seen.insert(skill).inserted else { throw DroverError(.invalidArgument, "skills: \(skill) is named twice") }
            let version = try await skillVersion(org: org, skill: skill, version: item["version"]?.stringValue ?? "latest")
            resolved.append(["type": "custom", "skill_id": .string(skill), "version": .string(version.id)])
        }
        return .array(resolved)
    }
}
