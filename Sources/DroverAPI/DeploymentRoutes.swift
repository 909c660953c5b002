import DroverCore
import DroverIO
import DroverStore

/// Deployments and their runs, as the SDK's `client.beta.deployments` and
/// `client.beta.deployment_runs` call them (issue #26).
extension APIRouter {
    func routeDeployments(_ request: HTTPServerRequest, target: Target, org: String) async throws -> APIResponse? {
        let path = target.segments
        guard path.count >= 2, path[1] == "deployments" || path[1] == "deployment_runs" else { return nil }
        let now = clock.now()
        switch (path[1], path.count, request.method) {
        case ("deployments", 2, "POST"): return try Self.ok(await store.createDeployment(org: org, try body(request), key: vaultKey, now: now))
        case ("deployments", 2, "GET"):
            return try Self.ok(await store.deployments(
                org: org, limit: try target.limit(), page: target.first("page"), includeArchived: target.flag("include_archived"),
                agentID: target.first("agent_id"), status: target.first("status"), createdFrom: try target.time("created_at[gte]"),
                createdTo: try target.time("created_at[lte]")))
        case ("deployments", 3, "GET"): return try Self.ok(await store.deployment(org: org, id: path[2]))
        case ("deployments", 3, "POST"):
            return try Self.ok(await store.updateDeployment(org: org, id: path[2], try body(request), key: vaultKey, now: now))
        case ("deployments", 4, "POST"):
            switch path[3] {
            case "archive": return try Self.ok(await store.archiveDeployment(org: org, id: path[2]))
            case "pause": return try Self.ok(await store.pauseDeployment(org: org, id: path[2], paused: true))
            case "unpause": return try Self.ok(await store.pauseDeployment(org: org, id: path[2], paused: false))
            case "run": return try Self.ok(await store.runDeployment(org: org, id: path[2], key: vaultKey))
            default: return nil
            }
        case ("deployment_runs", 2, "GET"):
            var filter = TenantStore.RunFilter()
            filter.deploymentID = target.first("deployment_id")
            filter.triggerType = target.first("trigger_type")
            if let flag = target.first("has_error") {
                guard flag == "true" || flag == "false" else { throw APIError.invalid("has_error must be true or false") }
                filter.hasError = flag == "true"
            }
            filter.createdAfter = try target.time("created_at[gt]")
            filter.createdFrom = try target.time("created_at[gte]")
            filter.createdBefore = try target.time("created_at[lt]")
            filter.createdTo = try target.time("created_at[lte]")
            return try Self.ok(await store.deploymentRuns(org: org, limit: try target.limit(), page: target.first("page"), filter: filter))
        case ("deployment_runs", 3, "GET"): return try Self.ok(await store.deploymentRun(org: org, id: path[2]))
        default: return nil
        }
    }
}
