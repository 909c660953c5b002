import DroverCore
import DroverMCP
import DroverModel
import DroverStore

/// An MCP server an agent may use: named in its `mcp_servers` and enabled by an `mcp_toolset`
/// entry of its tools (`default_config.enabled`, per-tool `configs`), as Managed Agents shapes them.
struct MCPServerSpec: Sendable, Equatable {
    var name: String
    var url: String
    var enabledByDefault: Bool
    var enabled: [String: Bool]
    /// `permission_policy` `always_ask`: each call waits for `user.tool_confirmation`.
    var askByDefault = false
    var ask: [String: Bool] = [:]

    func allows(_ tool: String) -> Bool { enabled[tool] ?? enabledByDefault }
    func asks(_ tool: String) -> Bool { ask[tool] ?? askByDefault }

    /// The servers of an agent version (its config's `mcp_servers`, its tools' toolsets).
    static func parse(configJSON: String, toolsJSON: String) -> [MCPServerSpec] {
        guard case .array(let servers)? = (try? JSONValue.parse(configJSON))?["mcp_servers"],
              case .array(let tools)? = try? JSONValue.parse(toolsJSON) else { return [] }
        return tools.compactMap { entry -> MCPServerSpec? in
            guard entry["type"]?.stringValue == "mcp_toolset", let name = entry["mcp_server_name"]?.stringValue,
                  let server = servers.first(where: { $0["name"]?.stringValue == name }), let url = server["url"]?.stringValue else { return nil }
            var enabled: [String: Bool] = [:]
            var ask: [String: Bool] = [:]
            if case .array(let configs)? = entry["configs"] {
                for config in configs {
                    guard let tool = config["name"]?.stringValue else { continue }
                    if let flag = config["enabled"]?.boolValue { enabled[tool] = flag }
                    if let policy = config["permission_policy"]?["type"]?.stringValue { ask[tool] = policy == "always_ask" }
                }
            }
            return MCPServerSpec(
                name: name, url: url, enabledByDefault: entry["default_config"]?["enabled"]?.boolValue ?? true, enabled: enabled,
                askByDefault: entry["default_config"]?["permission_policy"]?["type"]?.stringValue == "always_ask", ask: ask)
        }
    }
}

/// The MCP tools of one wake of a session: each server connected with the session's vault
/// credential for its URL, its enabled tools offered to the model under their own names (a name
/// another server or a built-in already uses is skipped, and logged).
struct MCPToolbox: Sendable {
    struct Entry: Sendable {
        var client: MCPClient
        var tool: String
        var asks: Bool
    }

    private(set) var entries: [String: Entry] = [:]
    private(set) var definitions: [ToolDefinition] = []
    /// Servers that could not be used this wake, with why.
    private(set) var failures: [(server: String, failure: MCPClient.Failure)] = []

    static let empty = MCPToolbox()

    static func connect(_ servers: [MCPServerSpec], access: VaultCredentials, taken: Set<String>, policy: NetworkPolicy, rule: AddressRule,
                        log: Log) async -> MCPToolbox {
        var box = MCPToolbox()
        var names = taken
        for server in servers {
            let client = MCPClient(name: server.name, url: server.url, token: access.token(for: server.url), policy: policy, rule: rule)
            do {
                for tool in try await client.connect() where server.allows(tool.name) {
                    // Model APIs take tool names of [a-zA-Z0-9_-]{1,128} and object schemas only.
                    guard (1...128).contains(tool.name.count), tool.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }),
                          tool.inputSchema["type"]?.stringValue == "object" else {
                        log.warning("an MCP tool's name or schema is not one a model API accepts; not offered",
                                    ("mcp_server", .string(server.name)), ("tool", .string(tool.name)))
                        continue
                    }
                    guard names.insert(tool.name).inserted else {
                        log.warning("an MCP tool's name is already taken; not offered", ("mcp_server", .string(server.name)), ("tool", .string(tool.name)))
                        continue
                    }
                    box.entries[tool.name] = Entry(client: client, tool: tool.name, asks: server.asks(tool.name))
                    box.definitions.append(ToolDefinition(name: tool.name, description: tool.description, inputSchema: tool.inputSchema))
                }
            } catch {
                box.failures.append((server.name, error))
            }
        }
        return box
    }

    func server(of tool: String) -> String? { entries[tool]?.client.name }

    /// Whether calls of `tool` wait for the user's confirmation (`always_ask`).
    func asks(_ tool: String) -> Bool { entries[tool]?.asks ?? false }

    /// Runs a call; a server failure mid-session is the call's error result, for the model to read.
    func call(_ name: String, input: JSONValue) async -> (content: [JSONValue], isError: Bool) {
        guard let entry = entries[name] else { return ([["type": "text", "text": .string("no MCP tool \(name) is connected")]], true) }
        do {
            return try await entry.client.callTool(entry.tool, arguments: input)
        } catch {
            return ([["type": "text", "text": .string(error.message)]], true)
        }
    }
}
