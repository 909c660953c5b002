import DroverCore
import DroverIO
import DroverStore

/// Webhook endpoints (beyond Managed Agents, shaped as the SDK's organization webhook endpoints,
/// for the events of agents, environments, sessions, deployments and their runs): create (the
/// signing secret is answered once), list, retrieve, update, delete, regenerate the secret, and
/// each endpoint's delivery log.
extension APIRouter {
    func routeWebhooks(_ request: HTTPServerRequest, target: Target, org: String) async throws -> APIResponse? {
        let path = target.segments
        guard path.count >= 2, path[1] == "webhooks" else { return nil }
        switch (path.count, request.method) {
        case (2, "POST"): return try Self.ok(await store.createWebhook(org: org, try body(request), key: vaultKey))
        case (2, "GET"): return try Self.ok(await store.webhooks(org: org, limit: try target.limit(), page: target.first("page")))
        case (3, "GET"): return try Self.ok(await store.webhook(org: org, id: path[2]))
        case (3, "POST"): return try Self.ok(await store.updateWebhook(org: org, id: path[2], try body(request)))
        case (3, "DELETE"): return try Self.ok(await store.deleteWebhook(org: org, id: path[2]))
        case (4, "POST") where path[3] == "regenerate_signing_secret":
            return try Self.ok(await store.regenerateWebhookSecret(org: org, id: path[2], key: vaultKey))
        case (4, "GET") where path[3] == "deliveries":
            return try Self.ok(await store.webhookDeliveries(
                org: org, id: path[2], limit: try target.limit(), page: target.first("page"), status: target.first("status")))
        default: return nil
        }
    }
}
