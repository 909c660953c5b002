import DroverCore

/// An agent's `multiagent` configuration as the SDK defines it, checked and resolved: roster and
/// predefined-agent entries (an id, `{type: agent, id, version?}`, `{type: self}`) become
/// `{type: agent, id, version}` references, and `multiagent_20261001` gets its defaults and, on
/// an update, is merged into the stored one level by level (the SDK's
/// `BetaManagedAgentsMultiagent20261001Params` rules). Pure: the caller reads the agents the
/// configuration names (`referencedIDs`) and passes what it found.

public enum MultiagentConfig {
    /// What the store knows of a referenced agent: each version's archived state and whether it
    /// has a multiagent configuration of its own.
    public struct Version: Sendable, Equatable {
        public var archived: Bool
        public var hasMultiagent: Bool
        public init(archived: Bool, hasMultiagent: Bool) {
            self.archived = archived
            self.hasMultiagent = hasMultiagent
        }
    }

    public typealias Agents = [String: [Int: Version]]

    static let maxEntries = 20

    /// The agent ids a configuration names (to look up before `resolve`).
    public static func referencedIDs(_ value: JSONValue) -> [String] {
        var ids: [String] = []
        func collect(_ list: JSONValue?) {
            guard case .array(let entries)? = list else { return }
            for entry in entries {
                if let id = entry.stringValue ?? (entry["type"]?.stringValue == "agent" ? entry["id"]?.stringValue : nil) { ids.append(id) }
            }
        }
        collect(value["agents"])
        collect(value["subagents"]?["predefined_agents"])
        collect(value["workflows"]?["predefined_agents"])
        return ids
    }

    /// The configuration to store (nil: none). `stored` is the agent's current one (an update's
    /// base); `me` is the agent (and version) being written, which `{type: self}` names.
    public static func resolve(_ value: JSONValue, stored: JSONValue?, me: (id: String, version: Int), agents: Agents) throws(DroverError) -> JSONValue? {
        if value == .null { return nil }
        guard case .object(let fields) = value, let type = fields["type"]?.stringValue else {
            throw invalid("multiagent: an object with type coordinator or multiagent_20261001 is required")
        }
        switch type {
        case "coordinator":
            try only(fields, ["type", "agents"], in: "multiagent")
            guard case .array(let entries)? = fields["agents"], (1...maxEntries).contains(entries.count) else {
                throw invalid("multiagent.agents: 1 to \(maxEntries) entries are required")
            }
            var roster: [JSONValue] = []
            var advisors = 0
            for (index, entry) in entries.enumerated() {
                let path = "multiagent.agents[\(index)]"
                if entry["type"]?.stringValue == "advisor" {
                    try only(members(entry), ["type", "model"], in: path)
                    guard let model = entry["model"]?.stringValue, !model.isEmpty else { throw invalid("\(path).model: a model id is required") }
                    advisors += 1
                    roster.append(["type": "advisor", "model": .string(model)])
                } else {
                    roster.append(try reference(entry, path: path, me: me, agents: agents))
                }
            }
            if advisors > 1 { throw invalid("multiagent.agents: at most one advisor") }
            try distinct(roster, in: "multiagent.agents", me: me)
            return ["type": "coordinator", "agents": .array(roster)]
        case "multiagent_20261001":
            try only(fields, ["type", "advisor", "subagents", "workflows"], in: "multiagent")
            let base = stored?["type"]?.stringValue == "multiagent_20261001" ? stored : nil
            var resolved: [String: JSONValue] = ["type": "multiagent_20261001"]
            for key in ["advisor", "subagents", "workflows"] {
                let path = "multiagent.\(key)"
                let old = base?[key]
                switch fields[key] {
                case nil: resolved[key] = old ?? defaultMember(key)
                case .null?: resolved[key] = defaultMember(key)
                case let sent?:
                    guard case .object(let given) = sent, let memberType = given["type"]?.stringValue else {
                        throw invalid("\(path): an object with its type is required")
                    }
                    let previous = old?["type"]?.stringValue == memberType ? old : nil
                    resolved[key] = key == "advisor"
                        ? try advisor(given, previous: previous, path: path)
                        : try member(given, previous: previous, path: path, me: me, agents: agents)
                }
            }
            return .object(resolved)
        default:
            throw invalid("multiagent.type: coordinator or multiagent_20261001")
        }
    }

    static func defaultMember(_ key: String) -> JSONValue {
        key == "advisor" ? ["type": "disabled"] : ["type": "enabled", "inline_agents": ["type": "enabled"], "predefined_agents": []]
    }

    private static func advisor(_ given: [String: JSONValue], previous: JSONValue?, path: String) throws(DroverError) -> JSONValue {
        switch given["type"]?.stringValue {
        case "disabled":
            try only(given, ["type"], in: path)
            return ["type": "disabled"]
        case "enabled":
            try only(given, ["type", "model"], in: path)
            guard let model = given["model"]?.stringValue ?? previous?["model"]?.stringValue, !model.isEmpty else {
                throw invalid("\(path).model: an enabled advisor needs its model")
            }
            return ["type": "enabled", "model": .string(model)]
        default:
            throw invalid("\(path).type: enabled or disabled")
        }
    }

    /// `subagents` or `workflows`: disabled, or enabled with its inline agents and predefined agents.
    private static func member(_ given: [String: JSONValue], previous: JSONValue?, path: String, me: (id: String, version: Int),
                               agents: Agents) throws(DroverError) -> JSONValue {
        switch given["type"]?.stringValue {
        case "disabled":
            try only(given, ["type"], in: path)
            return ["type": "disabled"]
        case "enabled":
            try only(given, ["type", "inline_agents", "predefined_agents"], in: path)
            let inline: JSONValue
            switch given["inline_agents"] {
            case nil: inline = previous?["inline_agents"] ?? ["type": "enabled"]
            case .null?: inline = ["type": "enabled"]
            case let sent?:
                guard let kind = sent["type"]?.stringValue, ["enabled", "disabled"].contains(kind), members(sent).count == 1 else {
                    throw invalid("\(path).inline_agents: {type: enabled} or {type: disabled}")
                }
                inline = ["type": .string(kind)]
            }
            var predefined: [JSONValue]
            switch given["predefined_agents"] {
            case nil:
                if case .array(let kept)? = previous?["predefined_agents"] { predefined = kept } else { predefined = [] }
            case .null?:
                predefined = []
            case .array(let entries)?:
                guard entries.count <= maxEntries else { throw invalid("\(path).predefined_agents: at most \(maxEntries)") }
                predefined = []
                for (index, entry) in entries.enumerated() {
                    predefined.append(try reference(entry, path: "\(path).predefined_agents[\(index)]", me: me, agents: agents))
                }
                try distinct(predefined, in: "\(path).predefined_agents", me: me)
            default:
                throw invalid("\(path).predefined_agents: an array is required")
            }
            if inline["type"]?.stringValue == "disabled" && predefined.isEmpty {
                throw invalid("\(path): with inline_agents disabled, predefined_agents must name at least one agent")
            }
            return ["type": "enabled", "inline_agents": inline, "predefined_agents": .array(predefined)]
        default:
            throw invalid("\(path).type: enabled or disabled")
        }
    }

    /// An entry as `{type: agent, id, version}`: the agent itself for `self`; another must exist,
    /// be unarchived and have no multiagent configuration of its own (depth 1).
    private static func reference(_ entry: JSONValue, path: String, me: (id: String, version: Int), agents: Agents) throws(DroverError) -> JSONValue {
        if entry["type"]?.stringValue == "self" {
            try only(members(entry), ["type"], in: path)
            return ["type": "agent", "id": .string(me.id), "version": .number(Double(me.version))]
        }
        let id: String
        var version: Int?
        if let text = entry.stringValue {
            id = text
        } else if entry["type"]?.stringValue == "agent", let text = entry["id"]?.stringValue {
            try only(members(entry), ["type", "id", "version"], in: path)
            id = text
            if let asked = entry["version"], asked != .null {
                guard let number = asked.intValue, number >= 1 else { throw invalid("\(path).version: a version of at least 1") }
                version = number
            }
        } else {
            throw invalid("\(path): an agent id, {type: agent, id, version?} or {type: self} is required")
        }
        if id == me.id { throw invalid("\(path): name the agent itself as {type: self}") }
        guard let versions = agents[id], let latest = versions.keys.max() else { throw DroverError(.invalidArgument, "\(path): no agent \(id)") }
        let chosen = version ?? latest
        guard let found = versions[chosen] else { throw invalid("\(path): agent \(id) has no version \(chosen)") }
        if found.archived { throw invalid("\(path): agent \(id) is archived") }
        if found.hasMultiagent { throw invalid("\(path): agent \(id) has a multiagent configuration of its own (one level only)") }
        return ["type": "agent", "id": .string(id), "version": .number(Double(chosen))]
    }

    /// Each agent named once (and the agent itself at most once).
    private static func distinct(_ entries: [JSONValue], in path: String, me: (id: String, version: Int)) throws(DroverError) {
        var seen = Set<String>()
        for entry in entries {
            guard let id = entry["id"]?.stringValue else { continue }
            guard seen.insert(id).inserted else {
                throw invalid(id == me.id ? "\(path): {type: self} at most once" : "\(path): agent \(id) is named twice")
            }
        }
    }

    private static func only(_ fields: [String: JSONValue], _ allowed: Set<String>, in path: String) throws(DroverError) {
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw invalid("\(path).\(unknown) is not a field of this object")
        }
    }

    private static func members(_ value: JSONValue) -> [String: JSONValue] {
        if case .object(let fields) = value { return fields }
        return [:]
    }

    private static func invalid(_ message: String) -> DroverError { DroverError(.invalidArgument, message) }
}
