import DroverCore
import DroverPostgres
import DroverResources

/// Agents and environments of an organisation, as `/v1/agents` and `/v1/environments` serve them.
extension TenantStore {
    /// The toolset an agent gets when it names none: Managed Agents' built-in tools.
    static let defaultTools: JSONValue = [["type": "agent_toolset_20260401"]]

    public func createAgent(org: String, _ body: JSONValue) async throws -> API.Agent {
        guard let name = body["name"]?.stringValue, !name.isEmpty else { throw DroverError(.invalidArgument, "name: a non-empty string is required") }
        try Self.checkUnsupported(body)
        let model = try Self.model(body["model"])
        // The id is drawn first when the configuration may name the agent itself.
        var id: String?
        var multiagent: JSONValue?
        if let asked = body["multiagent"], asked != .null {
            let drawn: String = try await mappingErrors { try await pool.query("SELECT drover.new_id('agent')")[0].decode(0) }
            id = drawn
            multiagent = try await resolvedMultiagent(org: org, asked, stored: nil, me: (drawn, 1))
        }
        return try await written(
            """
            INSERT INTO drover.agents AS a (id, version, name, model, system_prompt, tools, config, org_id, description, metadata)
            VALUES (coalesce($11, drover.new_id('agent')), 1, $1, $2, coalesce($3, ''), $4::jsonb,
                    jsonb_build_object('model_config', $5::jsonb, 'mcp_servers', coalesce($9::jsonb, '[]'), 'skills', coalesce($10::jsonb, '[]'))
                    || CASE WHEN $12::jsonb IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('multiagent', $12::jsonb) END,
                    $6, $7, coalesce($8::jsonb, '{}'))
            RETURNING drover.api_agent_json(a)::text
            """,
            [name, model.id, body["system"]?.stringValue, (body["tools"] ?? Self.defaultTools).text, model.config.text, org,
             body["description"]?.stringValue, Self.text(body["metadata"]), try Self.mcpServers(body["mcp_servers"]).map(\.text),
             try await resolvedSkills(org: org, body["skills"]).map(\.text), id, multiagent?.text], missing: "")
    }

    /// `multiagent` checked and resolved (`MultiagentConfig`) against the agents it names.
    func resolvedMultiagent(org: String, _ value: JSONValue, stored: JSONValue?, me: (id: String, version: Int)) async throws -> JSONValue? {
        let ids = MultiagentConfig.referencedIDs(value)
        var agents: MultiagentConfig.Agents = [:]
        if !ids.isEmpty {
            let rows = try await mappingErrors {
                try await pool.query(
                    "SELECT id, version, archived_at IS NOT NULL, config ? 'multiagent' FROM drover.agents WHERE org_id = $1 AND id = ANY ($2) AND NOT internal",
                    [org, ids])
            }
            for row in rows {
                agents[try row.decode(0), default: [:]][try row.decode(1)] = MultiagentConfig.Version(archived: try row.decode(2), hasMultiagent: try row.decode(3))
            }
        }
        return try MultiagentConfig.resolve(value, stored: stored, me: me, agents: agents)
    }

    /// What an agent may name that Drover does not do, refused rather than stored and ignored:
    /// `execution_identity` other than the service account every agent runs as (`aws_role`).
    /// Null, or `{type: service_account}`, is what every agent has.
    static func checkUnsupported(_ body: JSONValue) throws {
        if let identity = body["execution_identity"], identity != .null, identity["type"]?.stringValue != "service_account" {
            throw DroverError(.invalidArgument, "execution_identity: Drover runs every agent as its service account ({type: service_account}); \(identity["type"]?.stringValue ?? "this identity") is not supported")
        }
    }

    /// `mcp_servers`: `[{type: "url", name, url}]`, names unique (tools' `mcp_toolset` entries name them).
    static func mcpServers(_ value: JSONValue?) throws -> JSONValue? {
        guard let value, value != .null else { return nil }
        guard case .array(let servers) = value else { throw DroverError(.invalidArgument, "mcp_servers must be an array") }
        var names = Set<String>()
        for server in servers {
            guard server["type"]?.stringValue == "url", let name = server["name"]?.stringValue, (1...255).contains(name.count),
                  let url = server["url"]?.stringValue, url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw DroverError(.invalidArgument, "mcp_servers[]: {\"type\": \"url\", \"name\", \"url\": an http(s) URL} is required")
            }
            guard names.insert(name).inserted else { throw DroverError(.invalidArgument, "mcp_servers: the name \(name) is used twice") }
        }
        return value
    }

    /// `model` as a string or `{id, speed, …}`.
    static func model(_ value: JSONValue?) throws -> (id: String, config: JSONValue) {
        if let id = value?.stringValue, !id.isEmpty { return (id, ["id": .string(id), "speed": "standard"]) }
        if let id = value?["id"]?.stringValue, !id.isEmpty, let config = value { return (id, config) }
        throw DroverError(.invalidArgument, "model: a model id, or an object with id, is required")
    }

    public func agent(org: String, id: String, version: Int? = nil) async throws -> API.Agent {
        try await one(
            """
            SELECT drover.api_agent_json(a)::text FROM drover.agents a
             WHERE a.id = $1 AND a.org_id = $2 AND ($3::int IS NULL OR a.version = $3)
             ORDER BY a.version DESC LIMIT 1
            """, [id, org, version], missing: "no agent \(id)\(version.map { " version \($0)" } ?? "")")
    }

    /// A new version if `version` is current (`conflict` otherwise).
    public func updateAgent(org: String, id: String, _ body: JSONValue) async throws -> API.Agent {
        guard let version = body["version"]?.intValue else { throw DroverError(.invalidArgument, "version: the agent's current version is required") }
        if body["model"] != nil { _ = try Self.model(body["model"]) }
        try Self.checkUnsupported(body)
        // Skills are resolved to versions and MCP servers checked here; the SQL stores them as given.
        var patch = body
        if case .object(var fields) = body {
            if let skills = fields["skills"] { fields["skills"] = try await resolvedSkills(org: org, skills) ?? .null }
            if let servers = fields["mcp_servers"] { fields["mcp_servers"] = try Self.mcpServers(servers) ?? .null }
            if let asked = fields["multiagent"] {
                // Merged into the current version's (a stale `version` is refused by the update).
                let current = try await agent(org: org, id: id)
                fields["multiagent"] = try await resolvedMultiagent(org: org, asked, stored: current.definition.multiagent, me: (id, version + 1)) ?? .null
            }
            patch = .object(fields)
        }
        return try await written("SELECT drover.api_update_agent($1, $2, $3, $4::jsonb)::text", [org, id, version, patch.text], missing: "no agent \(id)")
    }

    /// Newest first; `createdFrom`/`createdTo` (`created_at[gte]`/`[lte]`) bound the agent's creation.
    public func agents(org: String, limit: Int, page: String?, includeArchived: Bool, createdFrom: String? = nil, createdTo: String? = nil) async throws -> APIPage<API.Agent> {
        let after = try Self.decodeCursor(page)?.split(separator: "|", maxSplits: 1).map(String.init)
        return try await pagedRows(
            """
            SELECT drover.api_agent_json(a)::text, to_char(f.first AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '|' || a.id
              FROM (SELECT DISTINCT ON (id) * FROM drover.agents WHERE org_id = $1 AND NOT internal ORDER BY id, version DESC) a
              CROSS JOIN LATERAL (SELECT min(created_at) AS first FROM drover.agents v WHERE v.id = a.id) f
             WHERE ($2 OR a.archived_at IS NULL)
               AND ($3::timestamp IS NULL OR (f.first AT TIME ZONE 'UTC', a.id) < ($3::timestamp, $4))
               AND ($6::timestamptz IS NULL OR f.first >= $6) AND ($7::timestamptz IS NULL OR f.first <= $7)
             ORDER BY f.first DESC, a.id DESC LIMIT $5
            """, [org, includeArchived, after?.first, after?.last, limit + 1, createdFrom, createdTo], limit: limit)
    }

    public func agentVersions(org: String, id: String, limit: Int, page: String?) async throws -> APIPage<API.Agent> {
        _ = try await agent(org: org, id: id)
        let before = try Self.decodeCursor(page).flatMap { Int($0) }
        return try await pagedRows(
            """
            SELECT drover.api_agent_json(a)::text, a.version::text FROM drover.agents a
             WHERE a.id = $1 AND a.org_id = $2 AND ($3::int IS NULL OR a.version < $3) ORDER BY a.version DESC LIMIT $4
            """, [id, org, before, limit + 1], limit: limit)
    }

    public func archiveAgent(org: String, id: String) async throws -> API.Agent {
        try await mappingErrors {
            try await pool.query("UPDATE drover.agents SET archived_at = now() WHERE id = $1 AND org_id = $2 AND archived_at IS NULL", [id, org])
        }
        return try await agent(org: org, id: id)
    }

    // MARK: - Environments

    public func createEnvironment(org: String, _ body: JSONValue) async throws -> API.Environment {
        guard let name = body["name"]?.stringValue, !name.isEmpty else { throw DroverError(.invalidArgument, "name: a non-empty string is required") }
        let kind = try Self.environmentKind(body["config"])
        return try await written(
            """
            INSERT INTO drover.environments AS e (id, name, config, org_id, description, metadata, kind)
            VALUES (drover.new_id('env'), $1, coalesce($2::jsonb, '{}') - 'type', $3, $4, coalesce($5::jsonb, '{}'), $6)
            RETURNING drover.api_environment_json(e)::text
            """, [name, Self.text(body["config"]), org, body["description"]?.stringValue, Self.text(body["metadata"]), kind], missing: "")
    }

    /// `config.type`: `cloud` (the default: Drover's sandbox pools) or `self_hosted` (the user's
    /// own workers run the tools; its config takes nothing else but Drover's `tool_deadline_s`,
    /// the seconds a call waits for a worker's result).
    static func environmentKind(_ config: JSONValue?) throws -> String {
        guard let config, config != .null else { return "cloud" }
        guard case .object(let fields) = config else { throw DroverError(.invalidArgument, "config: an object is required") }
        switch fields["type"]?.stringValue ?? "cloud" {
        case "cloud":
            try checkPackages(fields)
            return "cloud"
        case "self_hosted":
            if let other = fields.keys.sorted().first(where: { $0 != "type" && $0 != "tool_deadline_s" }) {
                throw DroverError(.invalidArgument, "config.\(other): a self_hosted environment's config takes only type (and tool_deadline_s)")
            }
            if let deadline = fields["tool_deadline_s"], deadline != .null {
                guard let seconds = deadline.intValue, (1...86_400).contains(seconds) else {
                    throw DroverError(.invalidArgument, "config.tool_deadline_s: whole seconds from 1 to 86400")
                }
            }
            return "self_hosted"
        default:
            throw DroverError(.invalidArgument, "config.type: cloud or self_hosted")
        }
    }

    /// `packages` as `PackageSet` reads them; under `limited` networking they need
    /// `allow_package_managers: true`, as the SDK documents (the install reaches the registries).
    static func checkPackages(_ config: [String: JSONValue]) throws {
        let packages: PackageSet
        do {
            packages = try PackageSet(json: config["packages"])
        } catch {
            throw DroverError(.invalidArgument, "config.\(error.message)")
        }
        let networking = config["networking"]
        if !packages.isEmpty, networking?["type"]?.stringValue == "limited", networking?["allow_package_managers"]?.boolValue != true {
            throw DroverError(.invalidArgument, "config.networking.allow_package_managers must be true when packages are specified under limited networking")
        }
    }

    public func environment(org: String, id: String) async throws -> API.Environment {
        try await owned("drover.environments", render: "drover.api_environment_json", id: id, org: org, what: "environment")
    }

    public func updateEnvironment(org: String, id: String, _ body: JSONValue) async throws -> API.Environment {
        if case .object(var config)? = body["config"] {
            // The type is fixed at creation; a patch without one is read as the stored type's.
            let stored = try await environment(org: org, id: id).config.type
            if config["type"] == nil { config["type"] = .string(stored) }
            let kind = try Self.environmentKind(.object(config))
            if kind != stored { throw DroverError(.invalidArgument, "config.type: environment \(id) is \(stored); create another for \(kind)") }
        }
        return try await written(
            """
            UPDATE drover.environments e
               SET name = coalesce($3, e.name), description = CASE WHEN $4 THEN $5 ELSE e.description END,
                   config = coalesce($6::jsonb - 'type', e.config), metadata = jsonb_strip_nulls(e.metadata || coalesce($7::jsonb, '{}')),
                   updated_at = now()
             WHERE e.id = $1 AND e.org_id = $2
            RETURNING drover.api_environment_json(e)::text
            """,
            [id, org, body["name"]?.stringValue, body["description"] != nil, body["description"]?.stringValue, Self.text(body["config"]),
             Self.text(body["metadata"])], missing: "no environment \(id)")
    }

    public func environments(org: String, limit: Int, page: String?, includeArchived: Bool) async throws -> APIPage<API.Environment> {
        try await byCreation(
            "drover.environments", render: "drover.api_environment_json", org: org, includeArchived: includeArchived, page: page, limit: limit,
            filter: "NOT t.internal")
    }

    public func archiveEnvironment(org: String, id: String) async throws -> API.Environment {
        try await one(
            """
            UPDATE drover.environments e SET archived_at = coalesce(e.archived_at, now()), updated_at = now()
             WHERE e.id = $1 AND e.org_id = $2 RETURNING drover.api_environment_json(e)::text
            """, [id, org], missing: "no environment \(id)")
    }

    /// Deletes an environment no session uses (`conflict` otherwise: archive it instead).
    public func deleteEnvironment(org: String, id: String) async throws -> API.Deleted {
        _ = try await environment(org: org, id: id)
        let used: Bool = try await mappingErrors {
            try await pool.query("SELECT EXISTS (SELECT 1 FROM drover.sessions WHERE environment_id = $1)", [id])[0].decode(0)
        }
        if used { throw DroverError(.conflict, "environment \(id) has sessions: archive it instead") }
        try await mappingErrors { try await pool.query("DELETE FROM drover.environments WHERE id = $1 AND org_id = $2", [id, org]) }
        return API.Deleted(id: id, type: "environment_deleted")
    }
}
