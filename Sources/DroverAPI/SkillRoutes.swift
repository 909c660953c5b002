import DroverCore
import DroverIO
import DroverStore

/// Skills, as the SDK's `client.beta.skills` calls them: `create` (multipart/form-data: one
/// `files[]` part per file of the skill's folder, its path as the part's filename, and an
/// optional `display_name`), `list`, `retrieve`, `delete`, and `versions` (`create` the same
/// way, `list`, `retrieve` by id or `latest`, `delete`, `download` as a zip archive).
extension APIRouter {
    func routeSkills(_ request: HTTPServerRequest, target: Target, org: String) async throws -> APIResponse? {
        let path = target.segments
        guard path.count >= 2, path[1] == "skills" else { return nil }
        switch (path.count, request.method) {
        case (2, "POST"):
            let form = try skillForm(request)
            let displayName = form.part("display_name").map { String(decoding: $0.body, as: UTF8.self) }
            return try Self.ok(await store.createSkill(org: org, displayName: displayName, files: try skillFiles(form)))
        case (2, "GET"):
            return try Self.ok(await store.skills(org: org, limit: try target.limit(), page: target.first("page"), source: target.first("source")))
        case (3, "GET"): return try Self.ok(await store.skill(org: org, id: path[2]))
        case (3, "DELETE"): return try Self.ok(await store.deleteSkill(org: org, id: path[2]))
        case (4, "POST") where path[3] == "versions":
            return try Self.ok(await store.createSkillVersion(org: org, skill: path[2], files: try skillFiles(try skillForm(request))))
        case (4, "GET") where path[3] == "versions":
            return try Self.ok(await store.skillVersions(org: org, skill: path[2], limit: try target.limit(), page: target.first("page")))
        case (5, "GET") where path[3] == "versions": return try Self.ok(await store.skillVersion(org: org, skill: path[2], version: path[4]))
        case (5, "DELETE") where path[3] == "versions": return try Self.ok(await store.deleteSkillVersion(org: org, skill: path[2], version: path[4]))
        case (6, "GET") where path[3] == "versions" && path[5] == "content":
            let archive = try await store.skillArchive(org: org, skill: path[2], version: path[4])
            return .raw(status: 200, contentType: "application/zip", body: archive.bytes, headers: [
                ("content-disposition", "attachment; filename=\"\(archive.name).zip\""),
            ])
        default: return nil
        }
    }

    private func skillForm(_ request: HTTPServerRequest) throws -> MultipartForm {
        do {
            return try MultipartForm(body: request.body, contentType: request.headers["content-type"] ?? "", maxParts: SkillBundle.maxFiles + 1)
        } catch {
            throw APIError.invalid("the body must be multipart/form-data with a files[] part per file: \(error.description)")
        }
    }

    /// The `files[]` (or `files`) parts, each named by its filename: the path in the skill's folder.
    private func skillFiles(_ form: MultipartForm) throws -> [(filename: String, bytes: [UInt8])] {
        try form.parts.filter { $0.name == "files[]" || $0.name == "files" }.map { part in
            guard let filename = part.filename, !filename.isEmpty else { throw APIError.invalid("files[]: every file part needs a filename (its path)") }
            return (filename, part.body)
        }
    }
}
