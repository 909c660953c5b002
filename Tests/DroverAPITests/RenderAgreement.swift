import DroverCore
import DroverPostgres
import DroverResources
import Testing

/// Every stored row's SQL render, decoded into its Swift type and encoded again, must come back
/// unchanged: a field the render has and the type lacks (or the other way round, or of another
/// JSON type) is found here, on whatever the SDK scripts just created, not by a client later.
enum RenderAgreement {
    /// One render per resource type: the statement that renders every row, and the round trip.
    static let renders: [(type: String, sql: String, roundTrip: @Sendable (JSONValue) throws -> JSONValue)] = [
        ("agent", "SELECT drover.api_agent_json(t)::text FROM drover.agents t", { try API.Agent.decode(render: $0).json }),
        ("environment", "SELECT drover.api_environment_json(t)::text FROM drover.environments t", { try API.Environment.decode(render: $0).json }),
        ("session", "SELECT drover.api_session_json(t)::text FROM drover.sessions t WHERE t.parent_session_id IS NULL", {
            var session = try API.Session.decode(render: $0).json
            // The render reads the clock: `duration_seconds` differs between two renders.
            if case .object(var fields) = session, case .object(var stats)? = fields["stats"] {
                stats["duration_seconds"] = $0["stats"]?["duration_seconds"]
                fields["stats"] = .object(stats)
                session = .object(fields)
            }
            return session
        }),
        ("session_thread", "SELECT drover.api_thread_json(t)::text FROM drover.sessions t WHERE t.parent_session_id IS NOT NULL", {
            try API.SessionThread.decode(render: $0).json
        }),
        ("session_resource", "SELECT drover.api_session_resource_json(t)::text FROM drover.session_resources t", {
            try API.SessionResource.decode(render: $0).json
        }),
        ("event", "SELECT drover.api_event_json(t)::text FROM drover.events t", { try API.SessionEvent.decode(render: $0).json }),
        ("vault", "SELECT drover.api_vault_json(t)::text FROM drover.vaults t", { try API.Vault.decode(render: $0).json }),
        ("vault_credential", "SELECT drover.api_credential_json(t)::text FROM drover.vault_credentials t", { try API.Credential.decode(render: $0).json }),
        ("file", "SELECT drover.api_file_json(t)::text FROM drover.files t", { try API.File.decode(render: $0).json }),
        ("memory_store", "SELECT drover.api_memory_store_json(t)::text FROM drover.memory_stores t", { try API.MemoryStore.decode(render: $0).json }),
        ("memory", "SELECT drover.api_memory_json(t, whole)::text FROM drover.memories t, (VALUES (true), (false)) f(whole)", {
            try API.Memory.decode(render: $0).json
        }),
        ("memory_version", "SELECT drover.api_memory_version_json(t, whole)::text FROM drover.memory_versions t, (VALUES (true), (false)) f(whole)", {
            try API.MemoryVersion.decode(render: $0).json
        }),
        ("skill", "SELECT drover.api_skill_json(t)::text FROM drover.skills t", { try API.Skill.decode(render: $0).json }),
        ("skill_version", "SELECT drover.api_skill_version_json(t)::text FROM drover.skill_versions t", { try API.SkillVersion.decode(render: $0).json }),
        ("dream", "SELECT drover.api_dream_json(t)::text FROM drover.dreams t", { try API.Dream.decode(render: $0).json }),
        ("deployment", "SELECT drover.api_deployment_json(t)::text FROM drover.deployments t", { try API.Deployment.decode(render: $0).json }),
        ("deployment_run", "SELECT drover.api_deployment_run_json(t)::text FROM drover.deployment_runs t", { try API.DeploymentRun.decode(render: $0).json }),
        ("webhook_endpoint", "SELECT drover.api_webhook_endpoint_json(t)::text FROM drover.webhook_endpoints t", {
            try API.WebhookEndpoint.decode(render: $0).json
        }),
        ("webhook_delivery", """
            SELECT drover.api_webhook_delivery_json(d, e)::text FROM drover.webhook_deliveries d JOIN drover.webhook_events e ON e.seq = d.event_seq
            """, { try API.WebhookDelivery.decode(render: $0).json }),
        ("work", "SELECT drover.api_work_json(t)::text FROM drover.work_items t", { try API.Work.decode(render: $0).json }),
    ]

    /// Checks every row of every render; returns how many rows of each type were checked, so a
    /// caller can require the kinds its scenario made.
    @discardableResult
    static func check(_ sql: ConnectionPool) async throws -> [String: Int] {
        var checked: [String: Int] = [:]
        for render in renders {
            let rows: PostgresRows
            do {
                rows = try await sql.query(render.sql)
            } catch {
                Issue.record("\(render.type): \(String(reflecting: error))")
                continue
            }
            for row in rows {
                let text: String = try row.decode(0)
                let stored = try JSONValue.parse(text)
                do {
                    let again = try render.roundTrip(stored)
                    #expect(again == stored, "\(render.type): the type does not hold its render: \(difference(stored, again))")
                } catch {
                    Issue.record("\(render.type): \(String(reflecting: error)) in \(text)")
                }
                checked[render.type, default: 0] += 1
            }
        }
        return checked
    }

    /// The first path where two values differ, for a readable failure.
    static func difference(_ a: JSONValue, _ b: JSONValue, path: String = "") -> String {
        if case .object(let left) = a, case .object(let right) = b {
            for key in Set(left.keys).union(right.keys).sorted() where left[key] != right[key] {
                guard let l = left[key], let r = right[key] else {
                    return "\(path).\(key): \(left[key] == nil ? "only in the type's" : "only in the render")"
                }
                return difference(l, r, path: path + "." + key)
            }
        }
        if case .array(let left) = a, case .array(let right) = b, left.count == right.count {
            for (index, pair) in zip(left, right).enumerated() where pair.0 != pair.1 {
                return difference(pair.0, pair.1, path: path + "[\(index)]")
            }
        }
        return "\(path): render \(a.text), type \(b.text)"
    }
}
