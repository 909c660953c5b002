import DroverCore
import DroverIO
import DroverStore

/// Dreams, as the SDK's `client.beta.dreams` calls them: create, retrieve, list (newest first,
/// by status and creation time), archive and cancel. Like the hosted API, every request must
/// carry the dreams beta (`anthropic-beta: dreaming-2026-04-21`, which the SDK sends).
extension APIRouter {
    static let dreamsBeta = "dreaming-2026-04-21"

    func routeDreams(_ request: HTTPServerRequest, target: Target, principal: APIPrincipal) async throws -> APIResponse? {
        let path = target.segments
        guard path.count >= 2, path[1] == "dreams" else { return nil }
        let betas = (request.headers["anthropic-beta"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard betas.contains(Self.dreamsBeta) else {
            throw APIError.invalid("the Dreams API is in beta: send the header anthropic-beta: \(Self.dreamsBeta)")
        }
        let org = principal.orgID
        switch (path.count, request.method) {
        case (2, "POST"): return try Self.ok(await store.createDream(org: org, try body(request), actor: .apiKey(principal.keyID)))
        case (2, "GET"):
            let limit = try target.limit()
            guard limit <= 100 else { throw APIError.invalid("limit must be between 1 and 100") }
            let statuses = target.query["statuses"]
            let known: Set = ["pending", "running", "completed", "failed", "canceled"]
            if let unknown = statuses?.first(where: { !known.contains($0) }) {
                throw APIError.invalid("statuses: \(unknown) is not a dream status (pending, running, completed, failed, canceled)")
            }
            return try Self.ok(await store.dreams(
                org: org, limit: limit, page: target.first("page"), includeArchived: target.flag("include_archived"), statuses: statuses,
                createdAfter: try target.time("created_at[gt]"), createdBefore: try target.time("created_at[lt]")))
        case (3, "GET"): return try Self.ok(await store.dream(org: org, id: path[2]))
        case (4, "POST") where path[3] == "archive": return try Self.ok(await store.archiveDream(org: org, id: path[2]))
        case (4, "POST") where path[3] == "cancel": return try Self.ok(await store.cancelDream(org: org, id: path[2]))
        default: return nil
        }
    }
}
