import DroverCore
import DroverModel
import DroverStore
import Foundation
import Synchronization

/// An agent version ready to run: immutable, so cached for the life of the harness.
struct RunnableAgent: Sendable {
    var model: String
    var systemPrompt: String
    var tools: [ToolDefinition]
    /// The agent's `custom` tools (the client runs them) and its `always_ask` built-ins.
    var customTools: Set<String> = []
    var askTools: Set<String> = []
    /// MCP servers its toolsets enable (connected at each wake, with the session's credentials).
    var mcpServers: [MCPServerSpec] = []
    var maxTurns: Int
    var maxTokens: Int
    var contextBudgetTokens: Int
    /// Input plus output tokens the session may spend over its whole log; nil for no limit.
    var tokenBudget: Int?
    /// The agents it may start session threads of (`multiagent`), by name; empty: none.
    var threadRoster: [(name: String, id: String, version: Int)] = []
    /// Whether it may start threads of inline agents (`multiagent_20261001`'s subagents with
    /// `inline_agents` enabled).
    var inlineThreads = false
    /// The model the agent may consult mid-turn (`multiagent`'s advisor); nil: none.
    var advisorModel: String?
    /// What its workflow runs' plans may use (`multiagent_20261001`'s `workflows`): the
    /// predefined agents by name, and whether inline agents; nil: workflows disabled.
    var workflows: (roster: [(name: String, id: String, version: Int)], inline: Bool)?
}

/// Caches agent versions (immutable) and environments (read once per process).
final class AgentCache: Sendable {
    let defaults: HarnessOptions
    private let agents = Mutex<[String: RunnableAgent]>([:])
    private let environments = Mutex<[String: EnvironmentConfig]>([:])

    init(defaults: HarnessOptions) { self.defaults = defaults }

    func agent(id: String, version: Int, store: SessionStore) async throws -> RunnableAgent {
        let key = "\(id)@\(version)"
        if let cached = agents.withLock({ $0[key] }) { return cached }
        let config = try await store.agent(id: id, version: version)
        let extra = (try? JSONValue.parse(config.configJSON)) ?? [:]
        var agent = RunnableAgent(
            model: config.model, systemPrompt: config.systemPrompt, tools: BuiltinTools.definitions(fromJSON: config.toolsJSON),
            customTools: BuiltinTools.customNames(fromJSON: config.toolsJSON), askTools: BuiltinTools.askNames(fromJSON: config.toolsJSON),
            maxTurns: extra["max_turns"]?.intValue ?? defaults.maxTurns, maxTokens: extra["max_tokens"]?.intValue ?? 4096,
            contextBudgetTokens: extra["context_budget_tokens"]?.intValue ?? defaults.contextBudgetTokens,
            tokenBudget: extra["token_budget"]?.intValue)
        agent.mcpServers = MCPServerSpec.parse(configJSON: config.configJSON, toolsJSON: config.toolsJSON)
        if case .array(let named)? = extra["skills"], !named.isEmpty {
            agent.systemPrompt += Self.skillsSection(try await store.skills(agent: id, version: version))
        }
        if let multiagent = extra["multiagent"], multiagent != .null {
            agent.threadRoster = try await store.threadRoster(agent: id, version: version)
            agent.advisorModel = Advisor.model(multiagent)
            agent.inlineThreads = multiagent["subagents"]?["type"]?.stringValue == "enabled"
                && multiagent["subagents"]?["inline_agents"]?["type"]?.stringValue == "enabled"
            if multiagent["workflows"]?["type"]?.stringValue == "enabled" {
                agent.workflows = (try await store.threadRoster(agent: id, version: version, workflows: true),
                                   multiagent["workflows"]?["inline_agents"]?["type"]?.stringValue == "enabled")
            }
        }
        agents.withLock { $0[key] = agent }
        return agent
    }

    /// The skills section of the system prompt: where each skill's folder is and what it is for.
    static func skillsSection(_ skills: [(name: String, description: String)]) -> String {
        guard !skills.isEmpty else { return "" }
        var text = "\n\n# Skills\n\nEach skill is a folder of instructions, scripts and resources, mounted read-only. Read its SKILL.md before you use it.\n"
        for skill in skills { text += "\n- /mnt/skills/\(skill.name)/SKILL.md: \(skill.description)" }
        return text
    }

    func environment(id: String, store: SessionStore) async throws -> EnvironmentConfig {
        if let cached = environments.withLock({ $0[id] }) { return cached }
        let environment = try await store.environment(id: id)
        environments.withLock { $0[id] = environment }
        return environment
    }
}
