import DroverCLI
import DroverCore
import DroverStore
import Foundation

struct WebhookCreateCommand: Command {
    static let name = "webhook create"
    static let summary = "register a webhook endpoint for an organisation (prints its signing secret once)"
    static let help = """
        usage: drover webhook create --org NAME --url URL --events TYPE,… [--name LABEL] [--description TEXT]

        Registers URL for the event types listed (docs/api.md, Webhooks: session.status_idled,
        deployment_run.started, …) and prints the endpoint as JSON, as POST /v1/webhooks would,
        with its signing_secret (whsec_…), which nothing shows again. Needs DROVER_VAULT_KEY (or
        DROVER_VAULT_KEY_FILE): the secret is sealed with it. Deliveries are made by `drover api`.
        """
    static let options: Set<String> = ["org", "url", "events", "name", "description"]

    static func run(_ arguments: Arguments) async throws {
        guard let org = arguments.value("org"), let url = arguments.value("url"), let events = arguments.value("events") else {
            throw UsageError("--org NAME, --url URL and --events TYPE,… are required")
        }
        var body: [String: JSONValue] = [
            "url": .string(url), "enabled_events": .array(events.split(separator: ",").map { .string(String($0)) }),
        ]
        if let name = arguments.value("name") { body["name"] = .string(name) }
        if let description = arguments.value("description") { body["description"] = .string(description) }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let store = TenantStore(pool: pool)
        Output.line(try await store.createWebhook(org: try await store.organization(named: org), .object(body), key: try VaultKey.fromEnvironment()).json.text)
    }
}

struct WebhookListCommand: Command {
    static let name = "webhook list"
    static let summary = "list an organisation's webhook endpoints"
    static let help = """
        usage: drover webhook list --org NAME

        Prints each endpoint as a JSON line (never its secret).
        """
    static let options: Set<String> = ["org"]

    static func run(_ arguments: Arguments) async throws {
        guard let org = arguments.value("org") else { throw UsageError("--org NAME is required") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let store = TenantStore(pool: pool)
        for endpoint in try await store.webhooks(org: try await store.organization(named: org), limit: 100, page: nil).data {
            Output.line(try endpoint.json.text)
        }
    }
}
