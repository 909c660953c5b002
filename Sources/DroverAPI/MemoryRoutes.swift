import DroverCore
import DroverIO
import DroverStore
import Foundation

/// Memory stores, as the SDK's `client.beta.memory_stores` calls them: the stores
/// (create, list, retrieve, update, archive, delete), their `memories` (create, list by prefix
/// and depth, retrieve, update with a precondition, delete) and `memory_versions` (list with
/// filters, retrieve, redact). `view` (`basic` or `full`) says whether content comes back: full
/// by default on retrieves, basic on lists, creates and updates, and a full list page holds at
/// most 20 items. Changes made with an API key are recorded as that key's (`api_actor`); with a
/// work item's sessions token, as its session's (`session_actor`).
extension APIRouter {
    func routeMemory(_ request: HTTPServerRequest, target: Target, principal: APIPrincipal) async throws -> APIResponse? {
        let path = target.segments
        guard path.count >= 2, path[1] == "memory_stores" else { return nil }
        let org = principal.orgID
        // A work item's sessions token writes as its session (the SDK's worker syncing a mount).
        let actor: TenantStore.MemoryActor = if case .workItem(_, _, _, let session)? = principal.work { .session(session) } else { .apiKey(principal.keyID) }
        let method = request.method
        func view(retrieve: Bool) throws -> Bool {
            switch target.first("view") {
            case nil: return retrieve
            case "full": return true
            case "basic": return false
            default: throw APIError.invalid("view must be basic or full")
            }
        }
        func limit(full: Bool) throws -> Int {
            let limit = try target.limit()
            guard limit <= (full ? 20 : 100) else { throw APIError.invalid("limit must be between 1 and \(full ? 20 : 100)\(full ? " with view=full" : "")") }
            return limit
        }
        switch (path.count, method) {
        case (2, "POST"): return try Self.ok(await store.createMemoryStore(org: org, try body(request)))
        case (2, "GET"):
            return try Self.ok(await store.memoryStores(
                org: org, limit: try target.limit(), page: target.first("page"), includeArchived: target.flag("include_archived"),
                createdFrom: try target.time("created_at[gte]"), createdTo: try target.time("created_at[lte]")))
        case (3, "GET"): return try Self.ok(await store.memoryStore(org: org, id: path[2]))
        case (3, "POST"): return try Self.ok(await store.updateMemoryStore(org: org, id: path[2], try body(request)))
        case (3, "DELETE"): return try Self.ok(await store.deleteMemoryStore(org: org, id: path[2]))
        case (4, "POST") where path[3] == "archive": return try Self.ok(await store.archiveMemoryStore(org: org, id: path[2]))
        case (4, "POST") where path[3] == "memories":
            return try Self.ok(await store.createMemory(org: org, store: path[2], try body(request), actor: actor, full: try view(retrieve: false)))
        case (4, "GET") where path[3] == "memories":
            let full = try view(retrieve: false)
            let depth = try target.first("depth").map { text -> Int in
                guard let value = Int(text), value >= 0 else { throw APIError.invalid("depth must be a whole number, 0 or more") }
                return value
            } ?? 0
            return try Self.ok(await store.memories(
                org: org, store: path[2], prefix: target.first("path_prefix"), depth: depth, limit: try limit(full: full), page: target.first("page"),
                full: full))
        case (5, "GET") where path[3] == "memories":
            return try Self.ok(await store.memory(org: org, store: path[2], id: path[4], full: try view(retrieve: true)))
        case (5, "POST") where path[3] == "memories":
            return try Self.ok(await store.updateMemory(org: org, store: path[2], id: path[4], try body(request), actor: actor, full: try view(retrieve: false)))
        case (5, "DELETE") where path[3] == "memories":
            return try Self.ok(await store.deleteMemory(
                org: org, store: path[2], id: path[4], expectedSHA256: target.first("expected_content_sha256"), actor: actor))
        case (4, "GET") where path[3] == "memory_versions":
            let full = try view(retrieve: false)
            var filter = TenantStore.VersionFilter()
            filter.memoryID = target.first("memory_id")
            filter.operation = target.first("operation")
            filter.sessionID = target.first("session_id")
            filter.apiKeyID = target.first("api_key_id")
            filter.createdFrom = try target.time("created_at[gte]")
            filter.createdTo = try target.time("created_at[lte]")
            return try Self.ok(await store.memoryVersions(
                org: org, store: path[2], filter: filter, limit: try limit(full: full), page: target.first("page"), full: full))
        case (5, "GET") where path[3] == "memory_versions":
            return try Self.ok(await store.memoryVersion(org: org, store: path[2], id: path[4], full: try view(retrieve: true)))
        case (6, "POST") where path[3] == "memory_versions" && path[5] == "redact":
            return try Self.ok(await store.redactMemoryVersion(org: org, store: path[2], id: path[4], actor: actor))
        default: return nil
        }
    }
}
