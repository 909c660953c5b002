import DroverCore
import DroverPostgres
import DroverResources

/// Dreams, as `/v1/dreams` serves them (issue #24, item 3; migration 0023): a dream is a session
/// Drover starts for the organisation, with its own agent, the output store mounted read-write
/// and the transcripts of the sessions it reads, so it is queued, leased and resumed like every
/// session. Its status follows that session's.
extension TenantStore {
    /// What `dreams.create` asked for, checked.
    struct DreamRequest {
        var storeID: String
        var sessionIDs: [String]
        var model: JSONValue
        var instructions: String?
        var updateExisting: Bool
    }

    /// The SDK's rules: exactly one `memory_store` and one `sessions` input (1 to 100 distinct
    /// ids), a model id of 1 to 256 characters (or `{id, speed: standard}`), instructions of 1
    /// to 4,096 characters, and `update_existing` naming the input store.
    static func dreamRequest(_ body: JSONValue) throws -> DreamRequest {
        guard case .object(let fields) = body else { throw DroverError(.invalidArgument, "the body must be a JSON object") }
        if let other = fields.keys.sorted().first(where: { !["inputs", "model", "instructions", "output_behavior"].contains($0) }) {
            throw DroverError(.invalidArgument, "\(other): unknown field (a dream takes inputs, model, instructions and output_behavior)")
        }
        guard case .array(let inputs)? = fields["inputs"] else {
            throw DroverError(.invalidArgument, "inputs: exactly one memory_store entry and one sessions entry are required")
        }
        var storeID: String?
        var sessionIDs: [String]?
        for input in inputs {
            switch input["type"]?.stringValue {
            case "memory_store":
                guard storeID == nil, let id = input["memory_store_id"]?.stringValue, !id.isEmpty else {
                    throw DroverError(.invalidArgument, "inputs: exactly one memory_store entry, with memory_store_id, is required")
                }
                storeID = id
            case "sessions":
                guard sessionIDs == nil, case .array(let ids)? = input["session_ids"] else {
                    throw DroverError(.invalidArgument, "inputs: exactly one sessions entry, with session_ids, is required")
                }
                let strings = ids.compactMap(\.stringValue)
                guard strings.count == ids.count, (1...100).contains(strings.count) else {
                    throw DroverError(.invalidArgument, "inputs[].session_ids: 1 to 100 session ids are required")
                }
                guard Set(strings).count == strings.count else { throw DroverError(.invalidArgument, "inputs[].session_ids: an id is given twice") }
                sessionIDs = strings.sorted()
            default:
                throw DroverError(.invalidArgument, "inputs[].type must be memory_store or sessions")
            }
        }
        guard let storeID, let sessionIDs else {
            throw DroverError(.invalidArgument, "inputs: exactly one memory_store entry and one sessions entry are required")
        }
        let model: JSONValue
        if let id = fields["model"]?.stringValue {
            model = ["id": .string(id), "speed": "standard"]
        } else if case .object(let object)? = fields["model"], let id = object["id"]?.stringValue {
            if let other = object.keys.first(where: { $0 != "id" && $0 != "speed" }) { throw DroverError(.invalidArgument, "model.\(other): unknown field") }
            guard [nil, .null, "standard"].contains(object["speed"]) else { throw DroverError(.invalidArgument, "model.speed: dreams accept only standard") }
            model = ["id": .string(id), "speed": "standard"]
        } else {
            throw DroverError(.invalidArgument, "model: a model id, or {id, speed}, is required")
        }
        guard let id = model["id"]?.stringValue, (1...256).contains(id.count) else {
            throw DroverError(.invalidArgument, "model: the id is 1 to 256 characters")
        }
        var instructions: String?
        if let value = fields["instructions"], value != .null {
            guard let text = value.stringValue, (1...4_096).contains(text.count) else {
                throw DroverError(.invalidArgument, "instructions: 1 to 4,096 characters")
            }
            instructions = text
        }
        var updateExisting = false
        if let behavior = fields["output_behavior"], behavior != .null {
            switch behavior["type"]?.stringValue {
            case "create_new": break
            case "update_existing":
                guard behavior["memory_store_id"]?.stringValue == storeID else {
                    throw DroverError(.invalidArgument, "output_behavior.memory_store_id must be the memory store in inputs (\(storeID))")
                }
                updateExisting = true
            default:
                throw DroverError(.invalidArgument, "output_behavior.type must be create_new or update_existing")
            }
        }
        return DreamRequest(storeID: storeID, sessionIDs: sessionIDs, model: model, instructions: instructions, updateExisting: updateExisting)
    }

    /// What the dream's agent is told, whatever the instructions add.
    static func dreamSystemPrompt(mountPath: String, instructions: String?) -> String {
        var text = """
            You are dreaming: reviewing what agents did in past sessions to reorganise a memory store that later sessions will read.
            The transcripts of the sessions to review are Markdown files in /mnt/session/transcripts/, one per session.
            The memory store is mounted read-write at \(mountPath): each memory is a UTF-8 text file of at most 100 kB.
            Rewrite it so that it holds what future sessions need: add the durable lessons the transcripts show, merge duplicates, \
            correct what turned out to be wrong and remove what is stale. Do not copy transcripts into it.
            When the store is as it should be, end your turn with a short summary of what you changed.
            """
        if let instructions { text += "\n\nThe user's instructions for this dream:\n" + instructions }
        return text
    }

    /// Creates the dream, its agent and its session in one transaction (`create_new`: and the
    /// output store, a copy of the input whose copies are the creating key's writes). The
    /// session is queued at once with the dream's first message.
    public func createDream(org: String, _ body: JSONValue, actor: MemoryActor) async throws -> API.Dream {
        let request = try Self.dreamRequest(body)
        let input = try await memoryStore(org: org, id: request.storeID)
        guard input.archivedAt == nil else { throw DroverError(.invalidArgument, "memory store \(request.storeID) is archived") }
        let inputName = input.name
        let created: (dream: String, session: String, wakes: [String]) = try await mappingErrors {
            try await pool.transaction { connection in
                // The store's row lock serialises creates on one store (the update_existing check).
                _ = try await connection.query("SELECT 1 FROM drover.memory_stores WHERE id = $1 FOR UPDATE", [request.storeID])
                let found = try await connection.query(
                    "SELECT id FROM drover.sessions WHERE org_id = $1 AND id = ANY($2::text[])", [org, request.sessionIDs]
                ).map { try $0.decode(0) as String }
                if let missing = request.sessionIDs.first(where: { !found.contains($0) }) { throw DroverError(.notFound, "no session \(missing)") }
                if request.updateExisting {
                    let busy = try await connection.query(
                        """
                        SELECT d.id FROM drover.dreams d LEFT JOIN drover.sessions s ON s.id = d.session_id
                         WHERE d.memory_store_id = $1 AND d.output_behavior ->> 'type' = 'update_existing'
                           AND (d.status IN ('pending', 'running') OR s.status IN ('queued', 'running'))
                         LIMIT 1
                        """, [request.storeID]).first.map { try $0.decode(0) as String }
                    if let busy {
                        throw DroverError(.conflict, "dream \(busy) is still updating memory store \(request.storeID): wait until it has stopped")
                    }
                }
                let dream = try await connection.query("SELECT drover.new_id('drm')", [])[0].decode(0) as String
                let output: (id: String, name: String, description: String)
                if request.updateExisting {
                    output = (request.storeID, inputName, input.description)
                } else {
                    let copy = try await connection.query(
                        """
                        INSERT INTO drover.memory_stores (id, org_id, name, description, metadata)
                        SELECT drover.new_id('memstore'), org_id, name || ' (dream)', description, jsonb_build_object('dream_id', $2::text)
                          FROM drover.memory_stores WHERE id = $1
                        RETURNING id, name, description
                        """, [request.storeID, dream])[0]
                    output = (try copy.decode(0), try copy.decode(1), try copy.decode(2))
                    _ = try await connection.query(
                        """
                        SELECT count(drover.memory_write($1, $2, NULL, m.path, m.content, NULL, false, $4::jsonb))
                          FROM (SELECT path, content FROM drover.memories WHERE store_id = $3 ORDER BY path) m
                        """, [org, output.id, request.storeID, actor.json])
                }
                let mountPath = "/mnt/memory/" + Self.slug(output.name)
                let environment = try await connection.query(
                    """
                    WITH made AS (
                        INSERT INTO drover.environments (id, name, config, org_id, description, kind, internal)
                        VALUES (drover.new_id('env'), 'dreams', '{}', $1, 'Where Drover runs this organisation''s dreams (no network).', 'cloud', true)
                        ON CONFLICT (org_id) WHERE internal DO NOTHING RETURNING id
                    )
                    SELECT id FROM made UNION ALL SELECT id FROM drover.environments WHERE org_id = $1 AND internal LIMIT 1
                    """, [org])[0].decode(0) as String
                let session = try await connection.query(
                    """
                    WITH a AS (
                        INSERT INTO drover.agents (id, version, name, model, system_prompt, tools, config, org_id, description, internal)
                        VALUES (drover.new_id('agent'), 1, 'dream ' || $1, $2, $3, '[{"type": "agent_toolset_20260401"}]',
                                jsonb_build_object('model_config', $4::jsonb, 'mcp_servers', '[]'::jsonb), $5, 'Runs dream ' || $1, true)
                        RETURNING id
                    )
                    INSERT INTO drover.sessions (id, agent_id, agent_version, environment_id, org_id, title, metadata, vault_ids, dream_id)
                    SELECT drover.new_id('sesn'), a.id, 1, $6, $5, 'Dream ' || $1, '{}', '{}', $1 FROM a
                    RETURNING id
                    """,
                    [dream, request.model["id"]?.stringValue, Self.dreamSystemPrompt(mountPath: mountPath, instructions: request.instructions),
                     request.model.text, org, environment])[0].decode(0) as String
                try await Self.insertStores(
                    [StoreResource(storeID: output.id, access: "read_write", instructions: nil, name: output.name, description: output.description,
                                   mountPath: mountPath)], session: session, on: connection)
                let message = "Dream: review the \(request.sessionIDs.count) session transcript\(request.sessionIDs.count == 1 ? "" : "s") in /mnt/session/transcripts/ and reorganise the memory store at \(mountPath)."
                let wakes = try await connection.query(
                    "SELECT sent.wake FROM (\(Self.sendSQL)) AS sent",
                    [session, ["user.message"], [JSONValue.object(["content": [["type": "text", "text": .string(message)]]]).text]]
                ).compactMap { $0[0] }
                let behavior: JSONValue = request.updateExisting
                    ? ["type": "update_existing", "memory_store_id": .string(request.storeID)] : ["type": "create_new"]
                _ = try await connection.query(
                    """
                    INSERT INTO drover.dreams (id, org_id, memory_store_id, session_ids, instructions, model, output_behavior, output_store_id, session_id)
                    VALUES ($1, $2, $3, $4::text[], $5, $6::jsonb, $7::jsonb, $8, $9)
                    """,
                    [dream, org, request.storeID, request.sessionIDs, request.instructions, request.model.text, behavior.text, output.id, session])
                return (dream, session, wakes)
            }
        }
        // Harnesses are woken after the commit, as for any user event.
        wake(session: created.session, created.wakes)
        return try await dream(org: org, id: created.dream)
    }

    public func dream(org: String, id: String) async throws -> API.Dream {
        try await owned("drover.dreams", render: "drover.api_dream_json", id: id, org: org, what: "dream")
    }

    /// Newest first; `statuses`, and `created_at[gt]`/`[lt]`, narrow the list.
    public func dreams(
        org: String, limit: Int, page: String?, includeArchived: Bool, statuses: [String]?, createdAfter: String?, createdBefore: String?
    ) async throws -> APIPage<API.Dream> {
        try await byCreation(
            "drover.dreams", render: "drover.api_dream_json", org: org, includeArchived: includeArchived, page: page, limit: limit,
            filter: "($6::text[] IS NULL OR t.status = ANY($6)) AND ($7::timestamptz IS NULL OR t.created_at > $7) AND ($8::timestamptz IS NULL OR t.created_at < $8)",
            extra: [statuses, createdAfter, createdBefore])
    }

    /// Stops a pending or running dream: `canceled` at once, its store attached read-only to its
    /// session from then on (nothing more is written back to it), and the session interrupted.
    /// Canceling a canceled dream returns it; a completed or failed one is a 400. A dream canceled
    /// before it started leaves no output store behind.
    public func cancelDream(org: String, id: String) async throws -> API.Dream {
        let (status, session, wakes): (String, String?, [String]) = try await mappingErrors {
            try await pool.transaction { connection in
                guard let row = try await connection.query(
                    "SELECT status, session_id, started_at IS NULL FROM drover.dreams WHERE id = $1 AND org_id = $2 FOR UPDATE", [id, org]).first else {
                    throw DroverError(.notFound, "no dream \(id)")
                }
                let status = try row.decode(0) as String
                guard status == "pending" || status == "running" else { return (status, nil, []) }
                _ = try await connection.query(
                    """
                    WITH d AS (UPDATE drover.dreams SET status = 'canceled', ended_at = now() WHERE id = $1 RETURNING *)
                    DELETE FROM drover.memory_stores m USING d
                     WHERE $2 AND m.id = d.output_store_id AND d.output_behavior ->> 'type' = 'create_new'
                    """, [id, try row.decode(2) as Bool])
                // Nothing more is written back: the store is the session's read-only from now on
                // (drover.memory_sync writes only stores attached read_write).
                _ = try await connection.query(
                    """
                    UPDATE drover.session_resources r SET access = 'read_only', updated_at = now()
                      FROM drover.dreams d WHERE d.id = $1 AND r.session_id = d.session_id AND r.type = 'memory_store'
                    """, [id])
                let session = try row.decodeIfPresent(1, as: String.self)
                guard let session else { return ("canceled", nil, []) }
                let wakes = try await connection.query(
                    "SELECT sent.wake FROM (\(Self.sendSQL)) AS sent", [session, ["user.interrupt"], ["{}"]]).compactMap { $0[0] }
                return ("canceled", session, wakes)
            }
        }
        if status == "completed" || status == "failed" { throw DroverError(.invalidArgument, "dream \(id) is \(status): only a pending or running dream can be canceled") }
        if let session { wake(session: session, wakes) }
        return try await dream(org: org, id: id)
    }

    /// Hides a finished dream from lists; a pending or running one is a 400 (cancel it first).
    public func archiveDream(org: String, id: String) async throws -> API.Dream {
        let current = try await dream(org: org, id: id)
        if current.status == "pending" || current.status == "running" {
            throw DroverError(.invalidArgument, "dream \(id) is \(current.status): cancel it before archiving it")
        }
        return try await one(
            "UPDATE drover.dreams d SET archived_at = coalesce(d.archived_at, now()) WHERE d.id = $1 AND d.org_id = $2 RETURNING drover.api_dream_json(d)::text",
            [id, org], missing: "no dream \(id)")
    }
}
