import DroverCLI
import DroverStore

struct AgentCreateCommand: Command {
    static let name = "agent create"
    static let summary = "register an agent (model, system prompt, tools)"
    static let help = """
        usage: drover agent create --name NAME --model MODEL [--system TEXT] [--tools JSON]

        Registers version 1 of an agent and prints its id.

          --name NAME     a name for people
          --model MODEL   the model id, e.g. claude-sonnet-4-5
          --system TEXT   the system prompt
          --tools JSON    a JSON array of tool definitions (default [])
        """
    static let options: Set<String> = ["name", "model", "system", "tools"]

    static func run(_ arguments: Arguments) async throws {
        guard let name = arguments.value("name"), let model = arguments.value("model") else {
            throw UsageError("--name and --model are required")
        }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let id = try await SessionStore(pool: pool).createAgent(
            name: name, model: model, systemPrompt: arguments.value("system") ?? "",
            toolsJSON: arguments.value("tools") ?? "[]")
        Output.line(id)
    }
}

struct EnvironmentCreateCommand: Command {
    static let name = "environment create"
    static let summary = "register a sandbox environment"
    static let help = """
        usage: drover environment create --name NAME [--config JSON]

        Registers an environment (sandbox resources and networking) and prints its id.

          --name NAME     a name for people
          --config JSON   a JSON object, e.g. {"networking":"none","memory_mb":512} (default {})
        """
    static let options: Set<String> = ["name", "config"]

    static func run(_ arguments: Arguments) async throws {
        guard let name = arguments.value("name") else { throw UsageError("--name is required") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        Output.line(try await SessionStore(pool: pool).createEnvironment(name: name, configJSON: arguments.value("config") ?? "{}"))
    }
}
