import DroverCore
import DroverPostgres
import Foundation

/// An agent version: what model to call, with what system prompt and tools. Immutable once
/// written, so harnesses cache it by (id, version).
public struct AgentConfig: Sendable, Equatable {
    public var id: String
    public var version: Int
    public var model: String
    public var systemPrompt: String
    /// The tool definitions as stored (a JSON array); empty means the built-in tools.
    public var toolsJSON: String
    /// Everything else (`max_turns`, `context_budget_tokens`, `max_tokens`, …) as a JSON object.
    public var configJSON: String
}

/// An environment: the sandbox configuration of the sessions that use it.
public struct EnvironmentConfig: Sendable, Equatable {
    public var id: String
    public var configJSON: String
    /// `config.type` `self_hosted`: the user's workers run its sandbox tools (`user.tool_result`).
    public var selfHosted = false
}

extension SessionStore {
    public func agent(id: String, version: Int) async throws -> AgentConfig {
        try await mappingErrors {
            let rows = try await pool.query(
                "SELECT model, system_prompt, tools::text, config::text FROM drover.agents WHERE id = $1 AND version = $2",
                [id, version])
            guard let row = rows.first else { throw DroverError(.notFound, "no agent \(id) version \(version)") }
            return AgentConfig(
                id: id, version: version, model: try row.decode(0), systemPrompt: try row.decode(1), toolsJSON: try row.decode(2),
                configJSON: try row.decode(3))
        }
    }

    /// The skills an agent version names, as its sessions' sandboxes mount them: name and
    /// description of each resolved version (a skill deleted since is left out).
    public func skills(agent id: String, version: Int) async throws -> [(name: String, description: String)] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT v.name, v.description FROM drover.agents a
                 CROSS JOIN LATERAL jsonb_array_elements(coalesce(a.config -> 'skills', '[]')) WITH ORDINALITY AS k(skill, n)
                  JOIN drover.skill_versions v ON v.skill_id = k.skill ->> 'skill_id' AND v.id = k.skill ->> 'version'
                 WHERE a.id = $1 AND a.version = $2 ORDER BY k.n
                """, [id, version]
            ).map { (try $0.decode(0), try $0.decode(1)) }
        }
    }

    /// The agents an agent version may start threads of (its `multiagent` coordinator roster, or
    /// its `subagents.predefined_agents`; with `workflows`, the `workflows.predefined_agents` a
    /// run's plan may use), with their names; empty without one. Advisors are not threads.
    public func threadRoster(agent id: String, version: Int, workflows: Bool = false) async throws -> [(name: String, id: String, version: Int)] {
        let list = workflows ? "a.config #> '{multiagent,workflows,predefined_agents}'"
            : "a.config #> '{multiagent,agents}', a.config #> '{multiagent,subagents,predefined_agents}'"
        return try await mappingErrors {
            try await pool.query(
                """
                SELECT r.name, r.id, r.version FROM drover.agents a
                 CROSS JOIN LATERAL jsonb_array_elements(coalesce(\(list), '[]')) WITH ORDINALITY AS m(entry, n)
                  JOIN drover.agents r ON r.id = m.entry ->> 'id' AND r.version = (m.entry ->> 'version')::int
                 WHERE a.id = $1 AND a.version = $2 AND m.entry ->> 'type' = 'agent' ORDER BY m.n
                """, [id, version]
            ).map { (try $0.decode(0), try $0.decode(1), try $0.decode(2)) }
        }
    }

    /// Starts a thread of the session `lease` holds (`drover.spawn_thread`, fenced by the lease);
    /// true when it was made now (false: it was already, by an earlier attempt of the same call).
    /// `inlineSystem`: the thread runs an inline agent (`agent.name`, this system prompt, the
    /// coordinator's model), made for it and not saved; `agent.id` is then unused. `workflowRun`:
    /// the run that starts it.
    public func spawnThread(_ lease: Lease, thread: String, agent: (name: String, id: String, version: Int), message: String,
                            inlineSystem: String? = nil, workflowRun: String? = nil) async throws -> Bool {
        let inline: JSONValue? = inlineSystem.map { ["name": .string(agent.name), "system": .string($0)] }
        return try await mappingErrors {
            try await pool.query("SELECT drover.spawn_thread($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)",
                                 [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, thread, inline == nil ? agent.id : nil,
                                  inline == nil ? agent.version : nil, agent.name, message, inline?.text, workflowRun])[0].decode(0)
        }
    }

    /// Interrupts those of `threads` (of the session `lease` holds) still working
    /// (`drover.interrupt_threads`, fenced); how many were.
    public func interruptThreads(_ lease: Lease, threads: [String]) async throws -> Int {
        guard !threads.isEmpty else { return 0 }
        return try await mappingErrors {
            try await pool.query("SELECT drover.interrupt_threads($1, $2, $3, $4::text[])",
                                 [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, threads])[0].decode(0)
        }
    }

    /// The session whose sandbox and resources `session` uses: its parent for a thread, else itself.
    public func home(of session: SessionID) async throws -> SessionID {
        guard session.rawValue.hasPrefix(Self.threadPrefix) else { return session }
        return try await mappingErrors {
            guard let row = try await pool.query("SELECT coalesce(parent_session_id, id) FROM drover.sessions WHERE id = $1", [session.rawValue]).first
            else { throw DroverError(.notFound, "no session \(session)") }
            return SessionID(try row.decode(0) as String)
        }
    }

    /// Sends a thread of the session `lease` holds another message (`drover.message_thread`,
    /// fenced, idempotent by `call`); true when it was sent now.
    public func messageThread(_ lease: Lease, thread: String, call: String, message: String) async throws -> Bool {
        try await mappingErrors {
            try await pool.query("SELECT drover.message_thread($1, $2, $3, $4, $5, $6)",
                                 [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, thread, call, message])[0].decode(0)
        }
    }

    public func environment(id: String) async throws -> EnvironmentConfig {
        try await mappingErrors {
            let rows = try await pool.query("SELECT config::text, kind = 'self_hosted' FROM drover.environments WHERE id = $1", [id])
            guard let row = rows.first else { throw DroverError(.notFound, "no environment \(id)") }
            return EnvironmentConfig(id: id, configJSON: try row.decode(0), selfHosted: try row.decode(1))
        }
    }

    /// Appends several events under one lease in one statement and one commit, in order. Each is
    /// fenced; the first refusal is thrown (events before it were written).
    @discardableResult
    public func appendAll(_ lease: Lease, _ events: [(EventType, String)]) async throws -> [AppendedEvent] {
        guard !events.isEmpty else { return [] }
        return try await mappingErrors {
            try await WriteBatch.send(events.map { .append(lease, $0.0, payload: $0.1) }, on: pool).map { outcome in
                guard case .appended(let event) = try outcome.get() else { throw DroverError(.database, "not an append") }
                return event
            }
        }
    }
}
