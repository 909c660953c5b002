import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Sessions and their events, as `/v1/sessions` serves them.
extension TenantStore {
    /// Event types a client may send, as `drover.send_event` accepts them.
    public static let userEventTypes: Set<String> = Set(EventType.userSide.map(\.rawValue))

    /// A session of an agent (latest version, or the one named by `{type: agent, id, version}`) in
    /// an environment of the same organisation, with its `vault_ids` (vaults of the organisation)
    /// and `resources` (`github_repository`, whose token is sealed with `key`).
    public func createSession(org: String, _ body: JSONValue, key: String? = nil) async throws -> API.Session {
        let prepared = try await prepareSession(org: org, body, key: key)
        let (session, wakes) = try await mappingErrors {
            try await pool.transaction { connection in
                let (id, wakes) = try await Self.insertSession(prepared, org: org, key: key, on: connection)
                let render = try await connection.query("SELECT drover.api_session_json(s)::text FROM drover.sessions s WHERE s.id = $1", [id])
                return (try API.Session.decode(written: try JSONValue.parse(try render[0].decode(0) as String)), wakes)
            }
        }
        wake(session: session.id, wakes)
        return session
    }

    /// A create request, checked against what it names, before anything is written.
    struct PreparedSession {
        var agentID: String
        var agentVersion: Int?
        var model: String?
        var environment: String
        var title: String?
        var metadata: String?
        var vaultIDs: [String]
        var repositories: [RepositoryResource]
        var files: [FileResource]
        var stores: [StoreResource]
        var initial: (types: [String], payloads: [String]) = ([], [])
        var budget: JSONValue?
        var deploymentID: String?
    }

    func prepareSession(org: String, _ body: JSONValue, key: String?) async throws -> PreparedSession {
        let agentID: String
        var version: Int?
        if let id = body["agent"]?.stringValue {
            agentID = id
        } else if let id = body["agent"]?["id"]?.stringValue {
            agentID = id
            version = body["agent"]?["version"]?.intValue
        } else {
            throw DroverError(.invalidArgument, "agent: an agent id, or {type: agent, id, version}, is required")
        }
        guard let environment = body["environment_id"]?.stringValue else { throw DroverError(.invalidArgument, "environment_id is required") }
        let agent = try await self.agent(org: org, id: agentID, version: version)
        if agent.archivedAt != nil { throw DroverError(.invalidArgument, "agent \(agentID) is archived") }
        let env = try await self.environment(org: org, id: environment)
        if env.archivedAt != nil { throw DroverError(.invalidArgument, "environment \(environment) is archived") }
        var prepared = PreparedSession(
            agentID: agentID, agentVersion: agent.definition.version, model: agent.definition.model.id, environment: environment,
            title: body["title"]?.stringValue, metadata: Self.text(body["metadata"]), vaultIDs: try await checkedVaults(org: org, body["vault_ids"]),
            repositories: try Self.repositories(body["resources"]), files: try await checkedFiles(org: org, body["resources"]),
            stores: try await checkedStores(org: org, body["resources"]))
        if prepared.repositories.contains(where: { $0.token != nil }) { _ = try VaultKey.required(key) }
        if let events = body["initial_events"], events != .null {
            guard case .array(let list) = events else { throw DroverError(.invalidArgument, "initial_events must be an array") }
            // Checked before anything is written: a refused event leaves no session behind.
            if !list.isEmpty {
                let (types, payloads) = try Self.userEvents(list, field: "initial_events")
                prepared.initial = (types, try await textRubrics(org: org, types: types, payloads: payloads))
            }
        }
        if let budget = body["budget"], budget != .null { prepared.budget = try await checkedBudget(budget, model: prepared.model) }
        return prepared
    }

    /// Writes a prepared session on `connection` (the caller's transaction): the session and its
    /// resources in one statement (a session is never seen without them), then its initial
    /// events. Answers its id and whom to wake after the commit.
    static func insertSession(_ prepared: PreparedSession, org: String, key: String?, on connection: PostgresConnection) async throws -> (String, [String]) {
        let sql = """
            WITH s AS (
                INSERT INTO drover.sessions (id, agent_id, agent_version, environment_id, org_id, title, metadata, vault_ids, deployment_id, budget)
                VALUES (drover.new_id('sesn'), $1, $2, $3, $4, $5, coalesce($6::jsonb, '{}'), $7::text[], $10, $11::jsonb)
                RETURNING *
            ), r AS (
                INSERT INTO drover.session_resources (id, session_id, type, url, mount_path, checkout, secret, key_id)
                SELECT drover.new_id('sesrsc'), s.id, 'github_repository', x.url, x.mount_path, x.checkout,
                       CASE WHEN x.token IS NULL THEN NULL ELSE drover.vault_seal(x.token, $9) END,
                       CASE WHEN x.token IS NULL THEN NULL ELSE drover.vault_key_id($9) END
                  FROM s, jsonb_to_recordset(coalesce($8::jsonb, '[]')) AS x(url text, mount_path text, checkout jsonb, token text)
                RETURNING id
            )
            SELECT s.id FROM s, (SELECT count(*) FROM r) AS made
            """
        let parameters: [(any PostgresEncodable)?] = [
            prepared.agentID, prepared.agentVersion, prepared.environment, org, prepared.title, prepared.metadata, prepared.vaultIDs,
            JSONValue.array(prepared.repositories.map { repository in
                ["url": .string(repository.url), "mount_path": .string(repository.mountPath),
                 "checkout": repository.checkout?.json ?? .null, "token": repository.token.map(JSONValue.string) ?? .null]
            }).text, key, prepared.deploymentID, prepared.budget?.text,
        ]
        guard let id = try await connection.query(sql, parameters).first.map({ try $0.decode(0) as String }) else {
            throw DroverError(.database, "the new session has no id")
        }
        if !prepared.files.isEmpty { try await insertFiles(prepared.files, session: id, on: connection) }
        if !prepared.stores.isEmpty { try await insertStores(prepared.stores, session: id, on: connection) }
        guard !prepared.initial.types.isEmpty else { return (id, []) }
        let wakes = try await connection.query("SELECT sent.wake FROM (\(sendSQL)) AS sent", [id, prepared.initial.types, prepared.initial.payloads])
            .map { $0[0] }
        return (id, wakes.compactMap { $0 })
    }

    /// A budget as the SDK types it (`{type: limit, max_list_cost: {amount, currency: USD}}`, the
    /// amount in cents as a decimal string), for a model the operator has priced
    /// (`drover.model_prices`): a budget cannot measure a model without a price.
    func checkedBudget(_ value: JSONValue, model: String?) async throws -> JSONValue {
        guard case .object(let fields) = value, fields["type"]?.stringValue == "limit", case .object(let cost)? = fields["max_list_cost"],
              let amount = cost["amount"]?.stringValue, !amount.isEmpty, amount.count <= 15, amount.allSatisfy(\.isASCII),
              amount.allSatisfy(\.isNumber), amount == "0" || !amount.hasPrefix("0") else {
            throw DroverError(.invalidArgument, "budget: {type: limit, max_list_cost: {amount, currency}} with the amount in cents as a whole decimal string (\"2500\" is $25.00) is required")
        }
        guard cost["currency"]?.stringValue == "USD" else { throw DroverError(.invalidArgument, "budget.max_list_cost.currency: USD is the only currency") }
        let priced = try await mappingErrors {
            try await pool.query("SELECT 1 FROM drover.model_prices WHERE model = $1", [model]).count == 1
        }
        guard priced else {
            throw DroverError(.invalidArgument, "budget: model_not_budgetable: the model \(model ?? "") has no list price on this server (drover prices set)")
        }
        return ["type": "limit", "max_list_cost": ["amount": .string(amount), "currency": "USD"]]
    }

    /// Appends user events (`$2` types, `$3` payloads) to session `$1`, in order, each as its row,
    /// with whom each wakes (`wake`, a channel): the caller notifies after its commit (`wake`).
    static let sendSQL = """
        SELECT r.event, r.wake
          FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS x(type, payload, n)
          CROSS JOIN LATERAL drover.append_user_event($1, x.type, x.payload) r
         ORDER BY x.n
        """

    /// Notifies the channels user events named, once each, after their commit.
    func wake(session: String, _ channels: [String]) {
        for channel in Set(channels) { notifier.notify(channel, session) }
    }

    /// Events a user may send, as types and payloads, or why not (`field` names them in errors).
    static func userEvents(_ events: [JSONValue], field: String) throws -> (types: [String], payloads: [String]) {
        var types: [String] = []
        var payloads: [String] = []
        for (index, event) in events.enumerated() {
            guard case .object(var fields) = event, let type = fields["type"]?.stringValue else {
                throw DroverError(.invalidArgument, "\(field)[\(index)]: an object with a type is required")
            }
            guard userEventTypes.contains(type) else {
                throw DroverError(.invalidArgument, "\(field)[\(index)].type: \(type) cannot be sent; send one of \(userEventTypes.sorted().joined(separator: ", "))")
            }
            if type == EventType.systemMessage.rawValue { try Self.checkSystemMessage(fields, at: index, of: events, field: field) }
            if type == EventType.userDefineOutcome.rawValue { fields = try Self.checkedOutcome(fields, field: "\(field)[\(index)]") }
            fields["type"] = nil
            types.append(type)
            payloads.append(JSONValue.object(fields).text)
        }
        return (types, payloads)
    }

    /// `system.message`, as the SDK documents it: text blocks only, at most one per request, the
    /// request's last event, right after the `user.message`, `user.tool_result` or
    /// `user.custom_tool_result` it accompanies.
    static func checkSystemMessage(_ fields: [String: JSONValue], at index: Int, of events: [JSONValue], field: String) throws {
        guard index == events.count - 1, index > 0,
              ["user.message", "user.tool_result", "user.custom_tool_result"].contains(events[index - 1]["type"]?.stringValue ?? "") else {
            throw DroverError(.invalidArgument,
                              "\(field)[\(index)]: a system.message must be the last event, right after the user.message, user.tool_result or user.custom_tool_result it accompanies")
        }
        guard case .array(let blocks)? = fields["content"], !blocks.isEmpty,
              blocks.allSatisfy({ $0["type"]?.stringValue == "text" && $0["text"]?.stringValue != nil }) else {
            throw DroverError(.invalidArgument, "\(field)[\(index)].content: a non-empty array of text blocks ({type: text, text}) is required")
        }
    }

    /// `user.define_outcome`, as the SDK documents it: a `description`, a `rubric` (`{type: text,
    /// content}` up to 262,144 characters, or `{type: file, file_id}`, read as text when sent:
    /// `textRubrics`), `max_iterations` 1 to 20 (default 3); the outcome gets its `outc_` id here.
    static func checkedOutcome(_ fields: [String: JSONValue], field: String) throws -> [String: JSONValue] {
        if let unknown = fields.keys.sorted().first(where: { !["description", "rubric", "max_iterations", "type"].contains($0) }) {
            throw DroverError(.invalidArgument, "\(field).\(unknown): not a field of user.define_outcome")
        }
        guard let description = fields["description"]?.stringValue, !description.isEmpty, description.count <= 262_144 else {
            throw DroverError(.invalidArgument, "\(field).description: a non-empty string is required")
        }
        var checked: [String: JSONValue] = ["description": .string(description), "outcome_id": .string("outc_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())]
        switch (fields["rubric"]?["type"]?.stringValue, fields["rubric"]?["content"]?.stringValue, fields["rubric"]?["file_id"]?.stringValue) {
        case ("text", let content?, _) where !content.isEmpty && content.count <= 262_144:
            checked["rubric"] = ["type": "text", "content": .string(content)]
        case ("file", _, let fileID?) where !fileID.isEmpty:
            checked["rubric"] = ["type": "file", "file_id": .string(fileID)]
        default:
            throw DroverError(.invalidArgument, "\(field).rubric: {type: text, content} (at most 262,144 characters) or {type: file, file_id} is required")
        }
        switch fields["max_iterations"] {
        case nil, .null?: checked["max_iterations"] = .number(Double(3))
        case let value?:
            guard let cycles = value.intValue, (1...20).contains(cycles) else { throw DroverError(.invalidArgument, "\(field).max_iterations: 1 to 20") }
            checked["max_iterations"] = .number(Double(cycles))
        }
        return checked
    }

    /// The events' file rubrics read as text rubrics (a file of the organisation, UTF-8, at most
    /// 262,144 characters), as the SDK says file rubrics are resolved.
    func textRubrics(org: String, types: [String], payloads: [String]) async throws -> [String] {
        var resolved = payloads
        for (index, type) in types.enumerated() where type == EventType.userDefineOutcome.rawValue {
            var payload = try JSONValue.parse(payloads[index])
            guard payload["rubric"]?["type"]?.stringValue == "file", let fileID = payload["rubric"]?["file_id"]?.stringValue,
                  case .object(var fields) = payload else { continue }
            let file = try await fileContent(org: org, id: fileID)
            guard let text = String(validating: file.bytes, as: UTF8.self), !text.isEmpty, text.count <= 262_144 else {
                throw DroverError(.invalidArgument, "rubric: file \(fileID) is not UTF-8 text of at most 262,144 characters")
            }
            fields["rubric"] = ["type": "text", "content": .string(text)]
            payload = .object(fields)
            resolved[index] = payload.text
        }
        return resolved
    }

    /// `vault_ids`: each a vault of the organisation, not archived, named once.
    func checkedVaults(org: String, _ value: JSONValue?) async throws -> [String] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value, items.allSatisfy({ $0.stringValue != nil }) else {
            throw DroverError(.invalidArgument, "vault_ids must be an array of vault ids")
        }
        let ids = items.compactMap(\.stringValue)
        guard ids.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } }) else {
            throw DroverError(.invalidArgument, "vault_ids must be vault ids (vlt_…)")
        }
        guard Set(ids).count == ids.count else { throw DroverError(.invalidArgument, "vault_ids must name each vault once") }
        guard !ids.isEmpty else { return ids }
        // One look-up for all of them; answered as retrieving each would (404 missing, 400 archived).
        let archived: [String: Bool] = try await mappingErrors {
            try await pool.query(
                "SELECT id, archived_at IS NOT NULL FROM drover.vaults WHERE org_id = $1 AND id = ANY($2::text[])", [org, ids]
            ).reduce(into: [:]) { found, row in found[try row.decode(0)] = try row.decode(1) }
        }
        for id in ids {
            guard let isArchived = archived[id] else { throw DroverError(.notFound, "no vault \(id)") }
            if isArchived { throw DroverError(.invalidArgument, "vault \(id) is archived") }
        }
        return ids
    }

    /// `resources`: the `github_repository` entries (files: `fileResources`).
    static func repositories(_ value: JSONValue?) throws -> [RepositoryResource] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else { throw DroverError(.invalidArgument, "resources must be an array") }
        var list: [RepositoryResource] = []
        for item in items {
            if ["file", "memory_store"].contains(item["type"]?.stringValue) { continue }  // `checkedFiles`, `checkedStores`
            guard item["type"]?.stringValue == "github_repository" else {
                throw DroverError(.invalidArgument, "resources[].type: github_repository, file and memory_store are supported by this server")
            }
            do {
                list.append(try RepositoryResource(json: item))
            } catch {
                throw DroverError(.invalidArgument, "resources: \(error.message)")
            }
        }
        guard Set(list.map(\.relayName)).count == list.count else {
            throw DroverError(.invalidArgument, "resources: two repositories would mount at the same name")
        }
        return list
    }

    /// A `file` resource: the file (of the organisation) and where its sandbox shows it.
    public struct FileResource: Sendable, Equatable {
        public var fileID: String
        public var mountPath: String
    }

    /// The `file` entries of `resources`, each a file of the organisation, at an absolute path
    /// under `/mnt/` (default `/mnt/session/uploads/<file_id>`; `/mnt/session/outputs` is the
    /// turn's outputs), no two at one path.
    func checkedFiles(org: String, _ value: JSONValue?) async throws -> [FileResource] {
        guard case .array(let items)? = value else { return [] }
        var list: [FileResource] = []
        for item in items where item["type"]?.stringValue == "file" {
            list.append(try Self.fileResource(item))
        }
        guard Set(list.map(\.mountPath)).count == list.count else { throw DroverError(.invalidArgument, "resources: two files at one mount_path") }
        for file in list { _ = try await self.file(org: org, id: file.fileID) }
        return list
    }

    static func fileResource(_ item: JSONValue) throws -> FileResource {
        guard let fileID = item["file_id"]?.stringValue, SessionFilePath.isFileID(fileID) else {
            throw DroverError(.invalidArgument, "resources[].file_id: the id of an uploaded file (file_…) is required")
        }
        let mountPath = item["mount_path"]?.stringValue ?? "/mnt/session/uploads/\(fileID)"
        guard SessionFilePath.isMountPath(mountPath) else {
            throw DroverError(.invalidArgument, "resources[].mount_path: an absolute path under /mnt/ (not /mnt/session/outputs), without empty, . or .. segments")
        }
        return FileResource(fileID: fileID, mountPath: mountPath)
    }

    static func insertFiles(_ files: [FileResource], session: String, on connection: PostgresConnection) async throws {
        _ = try await connection.query(
            """
            INSERT INTO drover.session_resources (id, session_id, type, file_id, mount_path, created_at, updated_at)
            SELECT drover.new_id('sesrsc'), $1, 'file', x.file_id, x.mount_path, clock_timestamp(), clock_timestamp()
              FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS x(file_id, mount_path, n) ORDER BY x.n
            """, [session, files.map(\.fileID), files.map(\.mountPath)])
    }

    /// A `memory_store` resource as attached: the store's name and description at that moment.
    public struct StoreResource: Sendable, Equatable {
        public var storeID: String
        public var access: String
        public var instructions: String?
        public var name: String
        public var description: String
        public var mountPath: String
    }

    /// The `memory_store` entries of `resources`: live stores of the organisation, `access`
    /// read_write (default) or read_only, `instructions` at most 4,096 characters, each mounted at
    /// /mnt/memory/<slug of its name> (no two at one path).
    func checkedStores(org: String, _ value: JSONValue?) async throws -> [StoreResource] {
        guard case .array(let items)? = value else { return [] }
        var list: [StoreResource] = []
        for item in items where item["type"]?.stringValue == "memory_store" {
            guard let storeID = item["memory_store_id"]?.stringValue else {
                throw DroverError(.invalidArgument, "resources[].memory_store_id: the id of a memory store (memstore_…) is required")
            }
            let access = item["access"]?.stringValue ?? "read_write"
            guard ["read_write", "read_only"].contains(access) else { throw DroverError(.invalidArgument, "resources[].access must be read_write or read_only") }
            let instructions = item["instructions"]?.stringValue
            guard (instructions?.count ?? 0) <= 4_096 else { throw DroverError(.invalidArgument, "resources[].instructions: at most 4,096 characters") }
            let store = try await memoryStore(org: org, id: storeID)
            guard store.archivedAt == nil else { throw DroverError(.invalidArgument, "memory store \(storeID) is archived") }
            let name = store.name
            list.append(StoreResource(
                storeID: storeID, access: access, instructions: instructions, name: name, description: store.description,
                mountPath: "/mnt/memory/" + Self.slug(name)))
        }
        guard Set(list.map(\.mountPath)).count == list.count else {
            throw DroverError(.invalidArgument, "resources: two memory stores would mount at one path (their names make the same /mnt/memory/ folder)")
        }
        return list
    }

    /// A store's folder name: lower case, each run of characters other than ASCII letters and
    /// digits one hyphen, as the SDK documents (and none at either end).
    static func slug(_ name: String) -> String {
        var out = ""
        for scalar in name.lowercased().unicodeScalars {
            if (scalar.value >= 0x61 && scalar.value <= 0x7A) || (scalar.value >= 0x30 && scalar.value <= 0x39) {
                out.unicodeScalars.append(scalar)
            } else if !out.hasSuffix("-") {
                out += "-"
            }
        }
        let trimmed = out.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return trimmed.isEmpty ? "store" : trimmed
    }

    static func insertStores(_ stores: [StoreResource], session: String, on connection: PostgresConnection) async throws {
        _ = try await connection.query(
            """
            INSERT INTO drover.session_resources
                   (id, session_id, type, memory_store_id, access, instructions, store_name, store_description, mount_path, created_at, updated_at)
            SELECT drover.new_id('sesrsc'), $1, 'memory_store', x.store, x.access, x.instructions, x.name, x.description, x.mount_path,
                   clock_timestamp(), clock_timestamp()
              FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(item, n)
             CROSS JOIN LATERAL jsonb_to_record(e.item) AS x(store text, access text, instructions text, name text, description text, mount_path text)
             ORDER BY e.n
            """, [session, JSONValue.array(stores.map { store in
                ["store": .string(store.storeID), "access": .string(store.access), "instructions": store.instructions.map(JSONValue.string) ?? .null,
                 "name": .string(store.name), "description": .string(store.description), "mount_path": .string(store.mountPath)]
            }).text])
    }

    /// `sessions.resources.add`: a file, mounted from the session's next sandbox or wake on.
    public func addSessionResource(org: String, session: String, _ body: JSONValue) async throws -> API.SessionResource {
        if try await isArchived(org: org, session: session) { throw DroverError(.invalidArgument, "session \(session) is archived") }
        guard body["type"]?.stringValue == "file" else { throw DroverError(.invalidArgument, "type: only file resources can be added to a session") }
        let file = try Self.fileResource(body)
        _ = try await self.file(org: org, id: file.fileID)
        let added = try await jsonRows(
            """
            INSERT INTO drover.session_resources AS r (id, session_id, type, file_id, mount_path)
            SELECT drover.new_id('sesrsc'), $1, 'file', $2, $3
             WHERE NOT EXISTS (SELECT 1 FROM drover.session_resources o WHERE o.session_id = $1 AND o.mount_path = $3)
            RETURNING drover.api_session_resource_json(r)::text
            """, [session, file.fileID, file.mountPath])
        guard let resource = added.first else {
            throw DroverError(.conflict, "a resource of session \(session) is mounted at \(file.mountPath) already")
        }
        return try API.SessionResource.decode(render: resource)
    }

    /// `sessions.resources.update`: a repository's new `authorization_token`, sealed with `key` as
    /// at creation; the next clone or fetch of a sandbox made from then on uses it. Other
    /// resources have nothing to update (400), as the SDK documents.
    public func updateSessionResource(org: String, session: String, id: String, _ body: JSONValue, key: String?) async throws -> API.SessionResource {
        _ = try await isArchived(org: org, session: session)
        let resource = try await sessionResource(org: org, session: session, id: id)
        guard case .githubRepository = resource else {
            throw DroverError(.invalidArgument, "only github_repository resources have an authorization_token to rotate")
        }
        guard let token = body["authorization_token"]?.stringValue, !token.isEmpty, token.utf8.count <= 4_096 else {
            throw DroverError(.invalidArgument, "authorization_token: a non-empty string is required")
        }
        let sealWith = try VaultKey.required(key)
        return try await one(
            """
            UPDATE drover.session_resources r
               SET secret = drover.vault_seal($3, $4), key_id = drover.vault_key_id($4), updated_at = now()
             WHERE r.session_id = $1 AND r.id = $2
            RETURNING drover.api_session_resource_json(r)::text
            """, [session, id, token, sealWith], missing: "no resource \(id) in session \(session)")
    }

    public func deleteSessionResource(org: String, session: String, id: String) async throws -> API.Deleted {
        _ = try await isArchived(org: org, session: session)
        return try await one(
            """
            DELETE FROM drover.session_resources r WHERE r.session_id = $1 AND r.id = $2
            RETURNING jsonb_build_object('type', 'session_resource_deleted', 'id', r.id)::text
            """, [session, id], missing: "no resource \(id) in session \(session)")
    }

    /// A session's resources (never their tokens), in the order they were given.
    public func sessionResources(org: String, session: String) async throws -> APIPage<API.SessionResource> {
        _ = try await isArchived(org: org, session: session)
        let rows = try await jsonRows(
            "SELECT drover.api_session_resource_json(r)::text FROM drover.session_resources r WHERE r.session_id = $1 ORDER BY r.created_at, r.id",
            [session])
        return APIPage(data: try rows.map(API.SessionResource.decode(render:)), nextPage: nil)
    }

    public func sessionResource(org: String, session: String, id: String) async throws -> API.SessionResource {
        _ = try await isArchived(org: org, session: session)
        return try await one(
            "SELECT drover.api_session_resource_json(r)::text FROM drover.session_resources r WHERE r.session_id = $1 AND r.id = $2",
            [session, id], missing: "no resource \(id) in session \(session)")
    }

    public func session(org: String, id: String) async throws -> API.Session {
        try await owned("drover.sessions", render: "drover.api_session_json", id: id, org: org, what: "session")
    }

    /// `sessions.update`: title, metadata (a key set to null is removed) and agent
    /// (`updateSessionAgent`), with a `session.updated` event saying what changed, in one
    /// transaction. `budget` (`budgetUpdate`) replaces or removes the session's budget from its
    /// next wake on. `vault_ids` is refused, never ignored, as the hosted API refuses it (reserved).
    public func updateSession(org: String, id: String, _ body: JSONValue) async throws -> API.Session {
        if body["vault_ids"] != nil { throw DroverError(.invalidArgument, "vault_ids: not yet supported in an update (reserved for future use)") }
        let agent = body["agent"].flatMap { $0 == .null ? nil : $0 }
        var budget: JSONValue?
        if let asked = body["budget"] { budget = try await budgetUpdate(org: org, id: id, asked) }
        let rendered: API.Session = try await mappingErrors {
            try await pool.transaction { connection in
                if let agent { try await Self.updateSessionAgent(org: org, id: id, agent, on: connection) }
                guard let row = try await connection.query(
                    """
                    UPDATE drover.sessions s
                       SET title = CASE WHEN $3 THEN $4 ELSE s.title END, metadata = jsonb_strip_nulls(s.metadata || coalesce($5::jsonb, '{}')),
                           budget = CASE WHEN $6 THEN $7::jsonb ELSE s.budget END,
                           budget_removed = s.budget_removed OR ($6 AND $7::jsonb IS NULL)
                     WHERE s.id = $1 AND s.org_id = $2
                    RETURNING drover.api_session_json(s)::text
                    """, [id, org, body["title"] != nil, body["title"]?.stringValue, Self.text(body["metadata"]), budget != nil,
                          budget.flatMap { $0 == .null ? nil : $0.text }]).first else {
                    throw DroverError(.notFound, "no session \(id)")
                }
                let rendered = try API.Session.decode(written: try JSONValue.parse(try row.decode(0) as String))
                var changed: [String: JSONValue] = [:]
                if body["title"] != nil { changed["title"] = rendered.title.map(JSONValue.string) ?? .null }
                if body["metadata"] != nil, !rendered.metadata.isEmpty { changed["metadata"] = .object(rendered.metadata.mapValues(JSONValue.string)) }
                if agent != nil { changed["agent"] = try rendered.agent.json }
                if budget != nil { changed["budget"] = try rendered.budget?.json ?? .null }
                if !changed.isEmpty {
                    _ = try await connection.query(
                        "SELECT drover.append_session_event($1, 'session.updated', $2::jsonb)", [id, JSONValue.object(changed).text])
                }
                return rendered
            }
        }
        return rendered
    }

    /// The budget an update sets (`.null`: removed), checked as the SDK documents: a session
    /// created without a budget, or whose budget was removed, takes none (`budget_create_only`);
    /// a terminated session takes no change; the new ceiling must lie above what the session has
    /// already spent (`budget_not_raised`); its model must have a price (`model_not_budgetable`).
    func budgetUpdate(org: String, id: String, _ value: JSONValue) async throws -> JSONValue {
        // The session as rendered (its agent's model, its spend) and whether a budget was removed, in one read.
        let rows = try await mappingErrors {
            try await pool.query("SELECT drover.api_session_json(s)::text, s.budget_removed FROM drover.sessions s WHERE s.id = $1 AND s.org_id = $2", [id, org])
        }
        guard let row = rows.first else { throw DroverError(.notFound, "no session \(id)") }
        let current = try JSONValue.parse(try row.decode(0) as String)
        let removed: Bool = try row.decode(1)
        if current["status"]?.stringValue == "terminated" {
            throw DroverError(.conflict, "budget: session \(id) is terminated; its budget no longer changes")
        }
        if current["budget"] == nil || current["budget"] == .null {
            throw DroverError(.invalidArgument, removed
                ? "budget: budget_create_only: the budget of session \(id) was removed, and a removed budget cannot be re-added"
                : "budget: budget_create_only: session \(id) was created without a budget, and one cannot be added after creation")
        }
        guard value != .null else { return .null }
        let model = current["agent"]?["model"]?["id"]?.stringValue ?? current["agent"]?["model"]?.stringValue
        let checked = try await checkedBudget(value, model: model)
        let spent = current["usage"]?["list_cost"]?["amount"]?.stringValue.flatMap { Int($0) } ?? 0
        if let amount = checked["max_list_cost"]?["amount"]?.stringValue.flatMap({ Int($0) }), amount <= spent {
            throw DroverError(.invalidArgument, "budget: budget_not_raised: max_list_cost \(amount) is at or below the \(spent) cents session \(id) has already spent")
        }
        return checked
    }

    /// A session's threads (`drover.api_thread_json`), oldest first.
    public func threads(org: String, session: String, limit: Int, page: String?) async throws -> APIPage<API.SessionThread> {
        _ = try await isArchived(org: org, session: session)
        return try await byCreation(
            "drover.sessions", render: "drover.api_thread_json", org: org, includeArchived: true, page: page, limit: limit,
            filter: "t.parent_session_id = $6", extra: [session], ascending: true)
    }

    public func thread(org: String, session: String, id: String) async throws -> API.SessionThread {
        try await one(
            "SELECT drover.api_thread_json(t)::text FROM drover.sessions t WHERE t.id = $1 AND t.parent_session_id = $2 AND t.org_id = $3",
            [id, session, org], missing: "no thread \(id) in session \(session)")
    }

    public func archiveThread(org: String, session: String, id: String) async throws -> API.SessionThread {
        try await one(
            """
            UPDATE drover.sessions t SET archived_at = coalesce(t.archived_at, now())
             WHERE t.id = $1 AND t.parent_session_id = $2 AND t.org_id = $3 RETURNING drover.api_thread_json(t)::text
            """, [id, session, org], missing: "no thread \(id) in session \(session)")
    }

    /// What `sessions.list` filters on, as the SDK names it. `statuses` as the API shows them
    /// (`running` includes queued sessions; `rescheduling` matches none here: a session whose
    /// harness died is queued again, and shows as running).
    public struct SessionFilter: Sendable {
        public var agentID: String?
        public var agentVersion: Int?
        public var id: String?
        public var statuses: [String]?
        public var createdAfter: String?
        public var createdFrom: String?
        public var createdBefore: String?
        public var createdTo: String?
        public var deploymentID: String?
        public var memoryStoreID: String?
        public var ascending = false
        public init() {}
    }

    /// Beyond Managed Agents: `id` looks one session up without a 404 when it is not there.
    public func sessions(org: String, limit: Int, page: String?, includeArchived: Bool, filter: SessionFilter) async throws -> APIPage<API.Session> {
        let known: Set<String> = ["rescheduling", "running", "idle", "terminated"]
        if let statuses = filter.statuses, let unknown = statuses.first(where: { !known.contains($0) }) {
            throw DroverError(.invalidArgument, "statuses: \(unknown) is not one of rescheduling, running, idle, terminated")
        }
        let statuses = filter.statuses.map { wanted in wanted.contains("running") ? wanted + ["queued"] : wanted }
        return try await byCreation(
            "drover.sessions", render: "drover.api_session_json", org: org, includeArchived: includeArchived, page: page, limit: limit,
            filter: """
                t.parent_session_id IS NULL AND ($6::text IS NULL OR t.agent_id = $6) AND ($7::text IS NULL OR t.id = $7) AND ($8::text[] IS NULL OR t.status = ANY ($8))
                AND ($9::int IS NULL OR t.agent_version = $9)
                AND ($10::timestamptz IS NULL OR t.created_at > $10) AND ($11::timestamptz IS NULL OR t.created_at >= $11)
                AND ($12::timestamptz IS NULL OR t.created_at < $12) AND ($13::timestamptz IS NULL OR t.created_at <= $13)
                AND ($14::text IS NULL OR t.deployment_id = $14)
                AND ($15::text IS NULL OR EXISTS (SELECT 1 FROM drover.session_resources r WHERE r.session_id = t.id AND r.memory_store_id = $15))
                """,
            extra: [filter.agentID, filter.id, statuses, filter.agentVersion, filter.createdAfter, filter.createdFrom, filter.createdBefore,
                    filter.createdTo, filter.deploymentID, filter.memoryStoreID],
            ascending: filter.ascending)
    }

    /// `sessions.update(agent={tools, mcp_servers})`: each given list replaces the session's (the
    /// others are kept), from its next turn on. The session keeps showing, and being listed by,
    /// the agent version it was created with; it runs an internal copy of it with the new lists
    /// (`run_agent_*`, migration 0026). Refused while the session runs (its turn uses the lists
    /// it started with).
    static func updateSessionAgent(org: String, id: String, _ agent: JSONValue, on connection: PostgresConnection) async throws {
        guard case .object(let fields) = agent else { throw DroverError(.invalidArgument, "agent: an object with tools and/or mcp_servers is required") }
        if let other = fields.keys.sorted().first(where: { $0 != "tools" && $0 != "mcp_servers" }) {
            throw DroverError(.invalidArgument, "agent.\(other): only tools and mcp_servers can change mid-session")
        }
        if let tools = fields["tools"], tools != .null {
            guard case .array = tools else { throw DroverError(.invalidArgument, "agent.tools must be an array") }
        }
        let servers = try fields["mcp_servers"].flatMap { try Self.mcpServers($0) ?? .array([]) }
        guard let row = try await connection.query(
            "SELECT status FROM drover.sessions WHERE id = $1 AND org_id = $2 FOR UPDATE", [id, org]).first else {
            throw DroverError(.notFound, "no session \(id)")
        }
        let status: String = try row.decode(0)
        guard status == "idle" else {
            throw DroverError(.conflict, "session \(id) is \(status == "terminated" ? "terminated" : "running"): its agent can change only while it is idle")
        }
        _ = try await connection.query(
            """
            WITH source AS (
                SELECT a.* FROM drover.sessions s JOIN drover.agents a
                    ON a.id = coalesce(s.run_agent_id, s.agent_id) AND a.version = coalesce(s.run_agent_version, s.agent_version)
                 WHERE s.id = $1
            ), copy AS (
                INSERT INTO drover.agents (id, version, name, model, system_prompt, tools, config, org_id, description, metadata, internal)
                SELECT drover.new_id('agent'), 1, name, model, system_prompt, coalesce($2::jsonb, tools),
                       config || CASE WHEN $3::jsonb IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('mcp_servers', $3::jsonb) END,
                       org_id, description, metadata, true
                  FROM source
                RETURNING id
            )
            UPDATE drover.sessions s SET run_agent_id = copy.id, run_agent_version = 1, updated_at = now() FROM copy WHERE s.id = $1
            """, [id, fields["tools"].flatMap { $0 == .null ? nil : $0.text }, servers?.text])
    }

    public func archiveSession(org: String, id: String) async throws -> API.Session {
        try await one(
            """
            UPDATE drover.sessions s SET archived_at = coalesce(s.archived_at, now())
             WHERE s.id = $1 AND s.org_id = $2 RETURNING drover.api_session_json(s)::text
            """, [id, org], missing: "no session \(id)")
    }

    /// Deletes a session with its log (refused while it runs).
    public func deleteSession(org: String, id: String) async throws -> API.Deleted {
        _ = try await session(org: org, id: id)
        let deleted: Bool = try await mappingErrors { try await pool.query("SELECT drover.delete_session($1)", [id])[0].decode(0) }
        guard deleted else { throw DroverError(.notFound, "no session \(id)") }
        return API.Deleted(id: id, type: "session_deleted")
    }

    /// Whether the organisation's session is archived; `not_found` when it has none of that id.
    /// One row read: the routes that only need to know the session is theirs do not render it
    /// (a render computes usage, and may write its kept sums).
    func isArchived(org: String, session: String) async throws -> Bool {
        let archived: [Bool] = try await mappingErrors {
            try await pool.query("SELECT archived_at IS NOT NULL FROM drover.sessions WHERE id = $1 AND org_id = $2", [session, org]).map { try $0.decode(0) }
        }
        guard let isArchived = archived.first else { throw DroverError(.notFound, "no session \(session)") }
        return isArchived
    }

    // MARK: - Events

    /// Appends a request's user events (all or none); returns them as stored.
    ///
    /// Group-committed with the other requests in flight (`UserEventBatcher`): one statement and
    /// one commit for many. The session's owner and archive are checked in the statement that
    /// appends (no row comes back when they fail, and only then is asked which it was).
    public func sendEvents(org: String, session: String, _ events: [JSONValue]) async throws -> JSONValue {
        guard !events.isEmpty else { throw DroverError(.invalidArgument, "events: at least one event is required") }
        let (types, checked) = try Self.userEvents(events, field: "events")
        let payloads = try await textRubrics(org: org, types: types, payloads: checked)
        let rows = try await sends.send(.init(org: org, session: session, types: types, payloads: payloads))
        if rows.isEmpty {
            let state: [(archived: Bool, terminated: Bool)] = try await mappingErrors {
                try await pool.query("SELECT archived_at IS NOT NULL, status = 'terminated' FROM drover.sessions WHERE id = $1 AND org_id = $2", [session, org])
                    .map { (try $0.decode(0), try $0.decode(1)) }
            }
            guard let state = state.first else { throw DroverError(.notFound, "no session \(session)") }
            if state.archived { throw DroverError(.invalidArgument, "session \(session) is archived and accepts no events") }
            if state.terminated { throw DroverError(.sessionTerminated, "session \(session) accepts no more events") }
            throw DroverError(.database, "no event was appended")
        }
        wake(session: session, rows.compactMap(\.wake))
        return ["data": .array(rows.map(\.event))]
    }

    /// A page of a session's events in seq order (`order: desc` reverses it); the cursor is a seq.
    ///
    /// Each direction is its own range scan of the (session_id, seq) key (an `ORDER BY CASE` could
    /// use no index: every page of a long log read and sorted it whole).
    public func events(org: String, session: String, limit: Int, page: String?, descending: Bool, types: [String]?) async throws -> APIPage<API.SessionEvent> {
        _ = try await isArchived(org: org, session: session)
        let from = try Self.decodeCursor(page).flatMap { Int64($0) }
        let range = descending ? "e.seq < coalesce($3, 9223372036854775807) ORDER BY e.seq DESC" : "e.seq > coalesce($3, 0) ORDER BY e.seq"
        return try await pagedRows(
            """
            SELECT drover.api_event_json(e)::text, e.seq::text FROM drover.events e
             WHERE e.session_id = $1 AND ($2::text[] IS NULL OR e.type = ANY ($2)) AND \(range) LIMIT $4
            """, [session, types, from, limit + 1], limit: limit)
    }

    /// Events after `seq`, in order, with their seq, API id and type (for streams).
    public func eventsAfter(session: String, seq: Int64, limit: Int = 500) async throws -> [(seq: Int64, id: String, type: String, json: String)] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT e.seq, 'sevt_' || replace(e.id::text, '-', ''), e.type, drover.api_event_json(e)::text FROM drover.events e
                 WHERE e.session_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3
                """, [session, seq, limit]
            ).map { (try $0.decode(0), try $0.decode(1), try $0.decode(2), try $0.decode(3)) }
        }
    }

    /// The seq of an event given by its API id (`sevt_…`), in a session of the organisation.
    public func seq(org: String, session: String, eventID: String) async throws -> Int64 {
        guard eventID.hasPrefix("sevt_"), eventID.count == 37 else { throw DroverError(.invalidArgument, "\(eventID) is not an event id") }
        let hex = String(eventID.dropFirst(5))
        let uuid = "\(hex.prefix(8))-\(hex.dropFirst(8).prefix(4))-\(hex.dropFirst(12).prefix(4))-\(hex.dropFirst(16).prefix(4))-\(hex.dropFirst(20))"
        let rows: [Int64] = try await mappingErrors {
            try await pool.query(
                """
                SELECT e.seq FROM drover.events e JOIN drover.sessions s ON s.id = e.session_id
                 WHERE e.id = $1::uuid AND e.session_id = $2 AND s.org_id = $3
                """, [uuid, session, org]).map { try $0.decode(0) }
        }
        guard let seq = rows.first else { throw DroverError(.notFound, "no event \(eventID) in session \(session)") }
        return seq
    }

    /// Tells every harness that streams want previews of these sessions' model calls (one
    /// notification each on `LeaseQueue.previewWatchChannel`, in one statement).
    public func watchPreviews(sessions: [String]) async throws {
        guard !sessions.isEmpty else { return }
        _ = try await mappingErrors {
            try await pool.query("SELECT pg_notify($1, s) FROM unnest($2::text[]) s", [LeaseQueue.previewWatchChannel, sessions])
        }
    }

    /// Last seq of each session (streams poll this, one query for all of a process's streams).
    public func lastSeqs(_ sessions: [String]) async throws -> [String: Int64] {
        guard !sessions.isEmpty else { return [:] }
        return try await mappingErrors {
            Dictionary(uniqueKeysWithValues: try await pool.query(
                "SELECT id, last_seq FROM drover.sessions WHERE id = ANY ($1::text[])", [sessions]
            ).map { (try $0.decode(0) as String, try $0.decode(1) as Int64) })
        }
    }
}
