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
        Output.line(try await store.createWebhook(org: try await store.organization(named: org), .object(body), key: try VaultKey.fromEnvironment()).text)
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
            Output.line(endpoint.text)
        }
    }
}

struct PricesSetCommand: Command {
    static let name = "prices set"
    static let summary = "set a model's list prices (US dollars per million tokens), which budgets are measured against"
    static let help = """
        usage: drover prices set --model MODEL --input USD --output USD [--cache-read USD] [--cache-write USD]

        Writes drover.model_prices (shared by every process). A session or deployment budget is
        accepted only for a model with a price; its usage.list_cost and the harness's budget
        check come from these prices.
        """
    static let options: Set<String> = ["model", "input", "output", "cache-read", "cache-write"]

    static func run(_ arguments: Arguments) async throws {
        guard let model = arguments.value("model"), let input = try arguments.double("input"), let output = try arguments.double("output") else {
            throw UsageError("--model MODEL, --input USD and --output USD are required")
        }
        let prices = [input, output, try arguments.double("cache-read") ?? 0, try arguments.double("cache-write") ?? 0]
        guard prices.allSatisfy({ $0 >= 0 && $0 < 1_000_000 }) else { throw UsageError("prices must be 0 or more") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        _ = try await pool.query(
            """
            INSERT INTO drover.model_prices (model, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (model) DO UPDATE SET input_per_mtok = $2, output_per_mtok = $3, cache_read_per_mtok = $4,
                                              cache_write_per_mtok = $5, updated_at = now()
            """, [model, prices[0], prices[1], prices[2], prices[3]])
        Output.line("\(model): input $\(prices[0]), output $\(prices[1]), cache read $\(prices[2]), cache write $\(prices[3]) per million tokens")
    }
}
