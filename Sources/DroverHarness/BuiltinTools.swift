import DroverCore
import DroverModel

/// The sandbox's built-in tools as the model sees them, used when an agent does not list its own:
/// Managed Agents' names, with the inputs of the SDK's `agent_toolset_20260401` (`file_path`,
/// `view_range`, `timeout_ms`), so a pool's sandbox and a self-hosted worker take the same calls.
/// The pool also takes the older `path`, `offset`/`limit` and `timeout`, which earlier logs hold.
public enum BuiltinTools {
    public static let all: [ToolDefinition] = [
        ToolDefinition(
            name: "bash", description: "Run a bash command in the sandbox's /workspace. Files persist between calls; processes do not.",
            inputSchema: object(["command": string("the command"), "restart": boolean("restart the bash session instead"),
                                 "timeout_ms": integer("milliseconds, optional")], required: [])),
        ToolDefinition(
            name: "read", description: "Read a file, numbered by line.",
            inputSchema: object(["file_path": string("file path"),
                                 "view_range": ["type": "array", "items": ["type": "integer"], "description": "[first_line, last_line], 1-based"]],
                                required: ["file_path"])),
        ToolDefinition(
            name: "write", description: "Create or replace a file.",
            inputSchema: object(["file_path": string("file path"), "content": string("the whole file")], required: ["file_path", "content"])),
        ToolDefinition(
            name: "edit", description: "Replace old_string with new_string in a file; old_string must be unique unless replace_all.",
            inputSchema: object(["file_path": string("file path"), "old_string": string("text to replace"), "new_string": string("replacement"),
                                 "replace_all": boolean("replace every occurrence")], required: ["file_path", "old_string", "new_string"])),
        ToolDefinition(
            name: "glob", description: "List files matching a glob pattern such as **/*.py, newest first.",
            inputSchema: object(["pattern": string("glob pattern"), "path": string("base folder, optional")], required: ["pattern"])),
        ToolDefinition(
            name: "grep", description: "Search file contents with an extended regular expression.",
            inputSchema: object(["pattern": string("regex"), "path": string("folder or file"), "glob": string("file filter"),
                                 "output_mode": string("files_with_matches, content or count")], required: ["pattern"])),
    ]

    /// The sandbox tools' names.
    public static let names = Set(all.map(\.name))

    /// The agent's own tool list (a JSON array of definitions), or the built-ins when it is empty.
    public static func definitions(fromJSON json: String) -> [ToolDefinition] {
        guard let value = try? JSONValue.parse(json), case .array(let tools) = value, !tools.isEmpty else { return all }
        return tools.flatMap { tool -> [ToolDefinition] in
            // Managed Agents' toolset entry: the built-in tools, less any its configs turn off.
            if tool["type"]?.stringValue?.hasPrefix("agent_toolset_") == true { return toolset(tool) }
            guard let name = tool["name"]?.stringValue else { return [] }
            if let builtin = all.first(where: { $0.name == name }), tool["input_schema"] == nil { return [builtin] }
            return [ToolDefinition(name: name, description: tool["description"]?.stringValue ?? "", inputSchema: tool["input_schema"] ?? ["type": "object"])]
        }
    }

    /// The agent's `custom` tools: the client runs them (`agent.custom_tool_use`).
    public static func customNames(fromJSON json: String) -> Set<String> {
        guard case .array(let tools)? = try? JSONValue.parse(json) else { return [] }
        return Set(tools.filter { $0["type"]?.stringValue == "custom" }.compactMap { $0["name"]?.stringValue })
    }

    /// Built-in tools whose permission policy is `always_ask` (the toolset's default, unless a
    /// tool's own config says otherwise): each call waits for `user.tool_confirmation`.
    public static func askNames(fromJSON json: String) -> Set<String> {
        guard case .array(let tools)? = try? JSONValue.parse(json) else { return [] }
        var ask = Set<String>()
        for entry in tools where entry["type"]?.stringValue?.hasPrefix("agent_toolset_") == true {
            let byDefault = entry["default_config"]?["permission_policy"]?["type"]?.stringValue == "always_ask"
            var policy: [String: Bool] = [:]
            if case .array(let configs)? = entry["configs"] {
                for config in configs {
                    if let name = config["name"]?.stringValue, let type = config["permission_policy"]?["type"]?.stringValue {
                        policy[name] = type == "always_ask"
                    }
                }
            }
            for tool in toolset(entry) where policy[tool.name] ?? byDefault { ask.insert(tool.name) }
        }
        return ask
    }

    /// `{"type": "agent_toolset_…", "default_config": {"enabled"}, "configs": [{"name", "enabled"}]}`.
    static func toolset(_ entry: JSONValue) -> [ToolDefinition] {
        var configs: [JSONValue] = []
        if case .array(let list)? = entry["configs"] { configs = list }
        var enabled: [String: Bool] = [:]
        for config in configs {
            if let name = config["name"]?.stringValue, let flag = config["enabled"]?.boolValue { enabled[name] = flag }
        }
        let byDefault = entry["default_config"]?["enabled"]?.boolValue ?? true
        return all.filter { enabled[$0.name] ?? byDefault }
    }

    private static func object(_ properties: [String: JSONValue], required: [String]) -> JSONValue {
        ["type": "object", "properties": .object(properties), "required": .array(required.map(JSONValue.string))]
    }
    private static func string(_ description: String) -> JSONValue { ["type": "string", "description": .string(description)] }
    private static func integer(_ description: String) -> JSONValue { ["type": "integer", "description": .string(description)] }
    private static func boolean(_ description: String) -> JSONValue { ["type": "boolean", "description": .string(description)] }
}
