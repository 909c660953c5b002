import DroverCore
import DroverIO
import DroverResources
import DroverStore
import Foundation

/// Files, as the SDK's `client.beta.files` calls them: `upload` (multipart/form-data with a
/// `file` part and an optional `expires_in_seconds`), `list` (`limit`, `page`, `ids`,
/// `scope_id`), `retrieve_metadata`, `download` (`/content`, the bytes as uploaded) and
/// `delete`. Scoped to the key's organisation like every other resource.
extension APIRouter {
    func routeFiles(_ request: HTTPServerRequest, target: Target, org: String) async throws -> APIResponse? {
        let path = target.segments
        guard path.count >= 2, path[1] == "files" else { return nil }
        switch (path.count, request.method) {
        case (2, "POST"): return try Self.ok(await upload(request, org: org))
        case (2, "GET"):
            let ids = target.query["ids"]
            if ids != nil && target.first("limit") != nil { throw APIError.invalid("ids cannot be combined with limit") }
            return try Self.ok(await store.files(
                org: org, limit: try target.limit(), page: target.first("page"), ids: ids, scopeID: target.first("scope_id")))
        case (3, "GET"): return try Self.ok(await store.file(org: org, id: path[2]))
        case (3, "DELETE"): return try Self.ok(await store.deleteFile(org: org, id: path[2]))
        case (4, "GET") where path[3] == "content":
            let file = try await store.fileContent(org: org, id: path[2])
            return .raw(status: 200, contentType: file.mimeType, body: file.bytes, headers: [
                ("content-disposition", "attachment; filename=\"\(file.filename.replacingOccurrences(of: "\"", with: "_"))\""),
            ])
        default: return nil
        }
    }

    private func upload(_ request: HTTPServerRequest, org: String) async throws -> API.File {
        let form: MultipartForm
        do {
            form = try MultipartForm(body: request.body, contentType: request.headers["content-type"] ?? "")
        } catch {
            throw APIError.invalid("the body must be multipart/form-data with a file part: \(error.description)")
        }
        guard let file = form.part("file") else { throw APIError.invalid("file: a part named file is required") }
        var expires: Int?
        if let part = form.part("expires_in_seconds") {
            guard let value = Int(String(decoding: part.body, as: UTF8.self).trimmingCharacters(in: .whitespaces)) else {
                throw APIError.invalid("expires_in_seconds must be a whole number")
            }
            expires = value
        }
        // Only the final path component of the part's filename is kept; none becomes `unnamed`.
        let given = (file.filename ?? "").split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let mime = file.contentType.flatMap { $0.isEmpty ? nil : $0 } ?? "application/octet-stream"
        return try await store.uploadFile(
            org: org, filename: given.isEmpty ? "unnamed" : String(given.prefix(255)), mimeType: mime, bytes: file.body, expiresInSeconds: expires)
    }
}
