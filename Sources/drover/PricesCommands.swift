import DroverCLI
import DroverStore

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
        try await TenantStore(pool: pool).setPrice(
            model: model, input: prices[0], output: prices[1], cacheRead: prices[2], cacheWrite: prices[3])
        Output.line("\(model): input $\(prices[0]), output $\(prices[1]), cache read $\(prices[2]), cache write $\(prices[3]) per million tokens")
    }
}
