import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Deployments and their runs, as `/v1/deployments` and `/v1/deployment_runs` serve them (issue
/// #26; migration 0029). A fire creates a session from the deployment and records its run in one
/// transaction, under the deployment's row lock, so a scheduled time fires at most once whoever
/// fires it; the runs' unique key on (deployment, scheduled time) stands behind that.
extension TenantStore {
    /// What a deployment is, checked: the columns written at create and at each update.
    struct DeploymentSpec {
        var name: String
        var description: String?
        var agentID: String
        var agentVersion: Int
        var environmentID: String
        var initialEvents: [JSONValue]
        var resources: [JSONValue]
        /// Repository tokens by resource index; nil keeps the sealed ones already stored.
        var tokens: [JSONValue]?
        var vaultIDs: [String]
        var metadata: [String: JSONValue]
        var budget: JSONValue?
        var schedule: CronSchedule?

        var scheduleJSON: JSONValue? {
            schedule.map { ["type": "cron", "expression": .string($0.expression), "timezone": .string($0.timeZone.identifier)] }
        }
    }

    static let deploymentFields: Set = [
        "agent", "environment_id", "initial_events", "name", "budget", "description", "metadata", "resources", "schedule", "vault_ids",
    ]

    /// Checks a create body, or an update's patch over the current spec (`current`), as the SDK
    /// documents each field.
    func deploymentSpec(org: String, _ body: JSONValue, current: DeploymentSpec?, key: String?) async throws -> DeploymentSpec {
        guard case .object(let fields) = body else { throw DroverError(.invalidArgument, "the body must be a JSON object") }
        if let unknown = fields.keys.sorted().first(where: { !Self.deploymentFields.contains($0) }) {
            throw DroverError(.invalidArgument, "\(unknown): unknown field")
        }
        func given(_ key: String) -> JSONValue? { fields[key] }
        if current == nil {
            for required in ["agent", "environment_id", "initial_events", "name"] where given(required) == nil || given(required) == .null {
                throw DroverError(.invalidArgument, "\(required) is required")
            }
        }
        // The agent: an id (its latest version) or {type: agent, id, version}; live.
        var agentID = current?.agentID ?? ""
        var agentVersion = current?.agentVersion ?? 0
        if let agent = given("agent") {
            var version: Int?
            if let id = agent.stringValue {
                agentID = id
            } else if let id = agent["id"]?.stringValue, let pinned = agent["version"]?.intValue {
                agentID = id
                version = pinned
            } else {
                throw DroverError(.invalidArgument, "agent: an agent id, or {type: agent, id, version}, is required")
            }
            let found = try await self.agent(org: org, id: agentID, version: version)
            guard found.archivedAt == nil else { throw DroverError(.invalidArgument, "agent \(agentID) is archived") }
            agentVersion = found.definition.version
        }
        var environmentID = current?.environmentID ?? ""
        if let value = given("environment_id") {
            guard let id = value.stringValue else { throw DroverError(.invalidArgument, "environment_id: an environment id is required") }
            let environment = try await self.environment(org: org, id: id)
            guard environment.archivedAt == nil else { throw DroverError(.invalidArgument, "environment \(id) is archived") }
            environmentID = id
        }
        var name = current?.name ?? ""
        if let value = given("name") {
            guard let text = value.stringValue, !text.isEmpty, text.count <= 256 else { throw DroverError(.invalidArgument, "name: 1 to 256 characters") }
            name = text
        }
        var description = current?.description
        if let value = given("description") {
            guard value == .null || value.stringValue != nil else { throw DroverError(.invalidArgument, "description must be a string") }
            description = value.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        }
        var initialEvents = current?.initialEvents ?? []
        if let value = given("initial_events") {
            guard case .array(let events) = value, (1...50).contains(events.count) else {
                throw DroverError(.invalidArgument, "initial_events: 1 to 50 events are required")
            }
            for (index, event) in events.enumerated() {
                switch event["type"]?.stringValue {
                case "user.message", "system.message": break
                case "user.define_outcome": throw DroverError(.invalidArgument, "initial_events[\(index)]: user.define_outcome is not served by this server yet")
                default: throw DroverError(.invalidArgument, "initial_events[\(index)].type must be user.message or system.message")
                }
            }
            _ = try Self.userEvents(events, field: "initial_events")
            initialEvents = events.map { ["type": $0["type"] ?? .null, "content": $0["content"] ?? .array([])] }
        }
        var metadata = current?.metadata ?? [:]
        if let value = given("metadata") {
            switch value {
            case .null where current != nil: break
            case .object(let patch):
                for (key, entry) in patch {
                    if entry == .null && current != nil { metadata[key] = nil; continue }
                    guard let text = entry.stringValue else { throw DroverError(.invalidArgument, "metadata.\(key): a string is required") }
                    guard key.count <= 64, text.count <= 512 else { throw DroverError(.invalidArgument, "metadata: keys up to 64 characters, values up to 512") }
                    metadata[key] = .string(text)
                }
                guard metadata.count <= 16 else { throw DroverError(.invalidArgument, "metadata: at most 16 pairs") }
            default: throw DroverError(.invalidArgument, "metadata must be an object of strings")
            }
        }
        var resources = current?.resources ?? []
        var tokens = current == nil ? [JSONValue]() : nil
        if let value = given("resources") {
            let items: [JSONValue]
            switch value {
            case .null: items = []
            case .array(let list): items = list
            default: throw DroverError(.invalidArgument, "resources must be an array")
            }
            guard items.count <= 500 else { throw DroverError(.invalidArgument, "resources: at most 500") }
            let repositories = try Self.repositories(.array(items))
            _ = try await checkedFiles(org: org, .array(items))
            _ = try await checkedStores(org: org, .array(items))
            if repositories.contains(where: { $0.token != nil }) { _ = try VaultKey.required(key) }
            resources = items.map { item in
                guard case .object(var object) = item else { return item }
                object["authorization_token"] = nil
                return .object(object)
            }
            tokens = items.enumerated().compactMap { index, item in
                item["authorization_token"]?.stringValue.map { ["index": .number(Double(index)), "token": .string($0)] }
            }
        }
        var vaultIDs = current?.vaultIDs ?? []
        if let value = given("vault_ids") {
            vaultIDs = try await checkedVaults(org: org, value)
            guard vaultIDs.count <= 50 else { throw DroverError(.invalidArgument, "vault_ids: at most 50") }
        }
        var schedule = current?.schedule
        if let value = given("schedule") {
            if value == .null {
                schedule = nil
            } else {
                guard value["type"]?.stringValue == "cron", let expression = value["expression"]?.stringValue,
                      let zone = value["timezone"]?.stringValue else {
                    throw DroverError(.invalidArgument, "schedule: {type: cron, expression, timezone} is required")
                }
                let cron = try CronSchedule(expression: expression, timeZone: zone)
                guard cron.next(after: Date()) != nil else { throw DroverError(.invalidArgument, "schedule.expression: \(expression) never fires") }
                schedule = cron
            }
        }
        var budget = current?.budget
        if let value = given("budget") {
            budget = value == .null ? nil : value
        }
        if let limit = budget, given("budget") != nil || given("agent") != nil {
            let model = try await self.agent(org: org, id: agentID, version: agentVersion).definition.model.id
            budget = try await checkedBudget(limit, model: model)
        }
        return DeploymentSpec(
            name: name, description: description, agentID: agentID, agentVersion: agentVersion, environmentID: environmentID,
            initialEvents: initialEvents, resources: resources, tokens: tokens, vaultIDs: vaultIDs, metadata: metadata, budget: budget,
            schedule: schedule)
    }

    /// The parameters `$3…$16` of a deployment's columns, in the order the SQL below takes them.
    func deploymentParameters(_ spec: DeploymentSpec, key: String?, now: Date) -> [(any PostgresEncodable)?] {
        let upcoming = spec.schedule?.upcoming(after: now, count: 5) ?? []
        return [
            spec.name, spec.description, spec.agentID, spec.agentVersion, spec.environmentID, JSONValue.array(spec.initialEvents).text,
            JSONValue.array(spec.resources).text, spec.tokens.map { $0.isEmpty ? nil : JSONValue.array($0).text } ?? nil, key,
            spec.vaultIDs, JSONValue.object(spec.metadata).text, spec.budget?.text, spec.scheduleJSON?.text,
            upcoming.map(\.postgresText),
        ]
    }

    public func createDeployment(org: String, _ body: JSONValue, key: String?, now: Date) async throws -> API.Deployment {
        let spec = try await deploymentSpec(org: org, body, current: nil, key: key)
        return try await written(
            """
            WITH d AS (
                INSERT INTO drover.deployments AS d (id, org_id, name, description, agent_id, agent_version, environment_id, initial_events,
                                                      resources, secrets, key_id, vault_ids, metadata, budget, schedule, upcoming_at, next_fire_at)
                VALUES (drover.new_id('depl'), $1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb,
                        CASE WHEN $9::text IS NULL THEN NULL ELSE drover.vault_seal($9, $10) END,
                        CASE WHEN $9::text IS NULL THEN NULL ELSE drover.vault_key_id($10) END,
                        $11::text[], $12::jsonb, $13::jsonb, $14::jsonb, $15::timestamptz[], ($15::timestamptz[])[1])
                RETURNING d.*
            ), v AS (
                INSERT INTO drover.deployment_versions (deployment_id, version, snapshot) SELECT d.id, 1, drover.api_deployment_json(d) FROM d
            )
            SELECT drover.api_deployment_json(d)::text FROM d
            """, [org] + deploymentParameters(spec, key: key, now: now), missing: "the new deployment")
    }

    public func deployment(org: String, id: String) async throws -> API.Deployment {
        try await owned("drover.deployments", render: "drover.api_deployment_json", id: id, org: org, what: "deployment")
    }

    /// The stored spec of a deployment, for an update's patch.
    func currentDeploymentSpec(org: String, id: String) async throws -> DeploymentSpec {
        let stored = try await deployment(org: org, id: id)
        guard stored.archivedAt == nil else { throw DroverError(.invalidArgument, "deployment \(id) is archived") }
        var schedule: CronSchedule?
        if let expression = stored.schedule?["expression"]?.stringValue, let zone = stored.schedule?["timezone"]?.stringValue {
            schedule = try CronSchedule(expression: expression, timeZone: zone)
        }
        return DeploymentSpec(
            name: stored.name, description: stored.description, agentID: stored.agent.id, agentVersion: stored.agent.version,
            environmentID: stored.environmentID, initialEvents: stored.initialEvents, resources: stored.resources, tokens: nil,
            vaultIDs: stored.vaultIDs, metadata: stored.metadata.mapValues(JSONValue.string), budget: try stored.budget?.json, schedule: schedule)
    }

    /// An update: each field given replaces (metadata: a patch), the rest is kept; a new version
    /// is recorded. A changed schedule starts from now.
    public func updateDeployment(org: String, id: String, _ body: JSONValue, key: String?, now: Date) async throws -> API.Deployment {
        let current = try await currentDeploymentSpec(org: org, id: id)
        let spec = try await deploymentSpec(org: org, body, current: current, key: key)
        let scheduleChanged = spec.scheduleJSON != current.scheduleJSON
        return try await written(
            """
            WITH d AS (
                UPDATE drover.deployments AS d
                   SET version = d.version + 1, name = $2, description = $3, agent_id = $4, agent_version = $5, environment_id = $6,
                       initial_events = $7::jsonb, resources = $8::jsonb,
                       secrets = CASE WHEN $17 THEN d.secrets WHEN $9::text IS NULL THEN NULL ELSE drover.vault_seal($9, $10) END,
                       key_id = CASE WHEN $17 THEN d.key_id WHEN $9::text IS NULL THEN NULL ELSE drover.vault_key_id($10) END,
                       vault_ids = $11::text[], metadata = $12::jsonb, budget = $13::jsonb, schedule = $14::jsonb,
                       upcoming_at = CASE WHEN $18 THEN $15::timestamptz[] ELSE d.upcoming_at END,
                       next_fire_at = CASE WHEN $14::jsonb IS NULL THEN NULL WHEN $18 THEN ($15::timestamptz[])[1] ELSE d.next_fire_at END,
                       updated_at = now()
                 WHERE d.id = $1 AND d.org_id = $16 AND d.archived_at IS NULL
                RETURNING d.*
            ), v AS (
                INSERT INTO drover.deployment_versions (deployment_id, version, snapshot) SELECT d.id, d.version, drover.api_deployment_json(d) FROM d
            )
            SELECT drover.api_deployment_json(d)::text FROM d
            """, [id] + deploymentParameters(spec, key: key, now: now) + [org, spec.tokens == nil, scheduleChanged],
            missing: "no deployment \(id)")
    }

    public func deployments(
        org: String, limit: Int, page: String?, includeArchived: Bool, agentID: String?, status: String?, createdFrom: String?, createdTo: String?
    ) async throws -> APIPage<API.Deployment> {
        guard limit <= 100 else { throw DroverError(.invalidArgument, "limit must be between 1 and 100") }
        if let status {
            guard ["active", "paused"].contains(status) else { throw DroverError(.invalidArgument, "status must be active or paused") }
            guard !includeArchived else { throw DroverError(.invalidArgument, "status and include_archived cannot be combined") }
        }
        return try await byCreation(
            "drover.deployments", render: "drover.api_deployment_json", org: org, includeArchived: includeArchived, page: page, limit: limit,
            filter: """
                ($6::text IS NULL OR t.agent_id = $6)
                AND ($7::text IS NULL OR ($7 = 'paused') = (t.paused_reason IS NOT NULL))
                AND ($8::timestamptz IS NULL OR t.created_at >= $8) AND ($9::timestamptz IS NULL OR t.created_at <= $9)
                """, extra: [agentID, status, createdFrom, createdTo])
    }

    /// Archived: no more fires, scheduled or manual; runs and sessions are kept.
    public func archiveDeployment(org: String, id: String) async throws -> API.Deployment {
        try await one(
            """
            UPDATE drover.deployments d SET archived_at = coalesce(d.archived_at, now()), next_fire_at = NULL, updated_at = now()
             WHERE d.id = $1 AND d.org_id = $2 RETURNING drover.api_deployment_json(d)::text
            """, [id, org], missing: "no deployment \(id)")
    }

    /// Paused (`manual`): scheduled times pass without runs until unpaused; `run` still works.
    public func pauseDeployment(org: String, id: String, paused: Bool) async throws -> API.Deployment {
        let deployment = try await deployment(org: org, id: id)
        guard deployment.archivedAt == nil else { throw DroverError(.invalidArgument, "deployment \(id) is archived") }
        return try await one(
            """
            UPDATE drover.deployments d
               SET paused_reason = CASE WHEN $3 THEN coalesce(d.paused_reason, '{"type": "manual"}') ELSE NULL END, updated_at = now()
             WHERE d.id = $1 AND d.org_id = $2 RETURNING drover.api_deployment_json(d)::text
            """, [id, org, paused], missing: "no deployment \(id)")
    }

    /// `run`: a manual run now, whatever the schedule and pause say; its run record (with the
    /// session, or why none was made).
    public func runDeployment(org: String, id: String, key: String?) async throws -> API.DeploymentRun {
        let prepared = try await prepareFire(deployment: id, org: org, key: key)
        let fired = try await mappingErrors {
            try await pool.transaction { connection in
                let current = try await connection.query(
                    "SELECT archived_at IS NOT NULL, version FROM drover.deployments WHERE id = $1 AND org_id = $2 FOR UPDATE", [id, org]
                ).first
                guard let current else { throw DroverError(.notFound, "no deployment \(id)") }
                guard !(try current.decode(0) as Bool) else { throw DroverError(.invalidArgument, "deployment \(id) is archived") }
                guard try current.decode(1) as Int == prepared.version else {
                    throw DroverError(.conflict, "deployment \(id) changed while its run was prepared; run it again")
                }
                return try await Self.recordFire(prepared, deployment: id, org: org, scheduledAt: nil, key: key, on: connection)
            }
        }
        if let session = fired.session { wake(session: session, fired.wakes) }
        return try await deploymentRun(org: org, id: fired.run)
    }

    public func deploymentRun(org: String, id: String) async throws -> API.DeploymentRun {
        try await owned("drover.deployment_runs", render: "drover.api_deployment_run_json", id: id, org: org, what: "deployment run")
    }

    public struct RunFilter: Sendable {
        public var deploymentID: String?
        public var hasError: Bool?
        public var triggerType: String?
        public var createdAfter: String?
        public var createdFrom: String?
        public var createdBefore: String?
        public var createdTo: String?
        public init() {}
    }

    public func deploymentRuns(org: String, limit: Int, page: String?, filter: RunFilter) async throws -> APIPage<API.DeploymentRun> {
        if let trigger = filter.triggerType, !["schedule", "manual"].contains(trigger) {
            throw DroverError(.invalidArgument, "trigger_type must be schedule or manual")
        }
        return try await byCreation(
            "drover.deployment_runs", render: "drover.api_deployment_run_json", org: org, includeArchived: true, page: page, limit: limit,
            filter: """
                ($6::text IS NULL OR t.deployment_id = $6) AND ($7::boolean IS NULL OR (t.error IS NOT NULL) = $7)
                AND ($8::text IS NULL OR t.trigger_type = $8)
                AND ($9::timestamptz IS NULL OR t.created_at > $9) AND ($10::timestamptz IS NULL OR t.created_at >= $10)
                AND ($11::timestamptz IS NULL OR t.created_at < $11) AND ($12::timestamptz IS NULL OR t.created_at <= $12)
                """,
            extra: [filter.deploymentID, filter.hasError, filter.triggerType, filter.createdAfter, filter.createdFrom, filter.createdBefore,
                    filter.createdTo])
    }

    /// What a fire of a deployment makes, read and checked before its transaction: the session
    /// (prepared as `sessions.create` prepares one) or the error that stops it, typed as the SDK's
    /// run errors. Its reads use the pool, so no transaction waits on a second connection.
    struct PreparedFire {
        var version: Int
        var agentID: String
        var agentVersion: Int
        var session: PreparedSession?
        var error: JSONValue?
    }

    func prepareFire(deployment id: String, org: String, key: String?) async throws -> PreparedFire {
        let row = try await mappingErrors {
            try await pool.query(
                """
                SELECT d.version, d.agent_id, d.agent_version, d.environment_id, d.initial_events::text, d.resources::text,
                       to_jsonb(d.vault_ids)::text, d.budget::text, d.name,
                       CASE WHEN d.secrets IS NULL THEN NULL ELSE drover.vault_open(d.secrets, d.key_id, $3) END,
                       CASE WHEN a.archived_at IS NOT NULL THEN 'agent_archived_error|agent ' || d.agent_id || ' is archived'
                            WHEN e.id IS NULL THEN 'environment_not_found_error|no environment ' || d.environment_id
                            WHEN e.archived_at IS NOT NULL THEN 'environment_archived_error|environment ' || d.environment_id || ' is archived'
                            ELSE (SELECT CASE WHEN x.id IS NULL THEN 'vault_not_found_error|no vault ' || v
                                              ELSE 'vault_archived_error|vault ' || v || ' is archived' END
                                    FROM unnest(d.vault_ids) v LEFT JOIN drover.vaults x ON x.id = v AND x.org_id = d.org_id
                                   WHERE x.id IS NULL OR x.archived_at IS NOT NULL LIMIT 1)
                       END,
                       (SELECT CASE r ->> 'type'
                                   WHEN 'file' THEN 'file_not_found_error|no file ' || (r ->> 'file_id')
                                   ELSE CASE WHEN m.id IS NULL THEN 'session_resource_not_found_error|no memory store ' || (r ->> 'memory_store_id')
                                             ELSE 'memory_store_archived_error|memory store ' || m.id || ' is archived' END END
                          FROM jsonb_array_elements(d.resources) r
                          LEFT JOIN drover.files f ON f.id = r ->> 'file_id' AND f.org_id = d.org_id
                          LEFT JOIN drover.memory_stores m ON m.id = r ->> 'memory_store_id' AND m.org_id = d.org_id
                         WHERE (r ->> 'type' = 'file' AND f.id IS NULL)
                            OR (r ->> 'type' = 'memory_store' AND (m.id IS NULL OR m.archived_at IS NOT NULL))
                         LIMIT 1)
                  FROM drover.deployments d
                  JOIN drover.agents a ON a.id = d.agent_id AND a.version = d.agent_version
                  LEFT JOIN drover.environments e ON e.id = d.environment_id AND e.org_id = d.org_id
                 WHERE d.id = $1 AND d.org_id = $2
                """, [id, org, key]).first
        }
        guard let row else { throw DroverError(.notFound, "no deployment \(id)") }
        var fire = PreparedFire(version: try row.decode(0), agentID: try row.decode(1), agentVersion: try row.decode(2))
        if let problem = row[10] ?? row[11] {
            let parts = problem.split(separator: "|", maxSplits: 1).map(String.init)
            fire.error = ["type": .string(parts[0]), "message": .string(parts.count > 1 ? parts[1] : parts[0])]
            return fire
        }
        guard case .array(var resources) = try JSONValue.parse(try row.decode(5) as String),
              case .array(let vaults) = try JSONValue.parse(try row.decode(6) as String) else {
            throw DroverError(.database, "deployment \(id) is malformed")
        }
        if let sealed = row[9], case .array(let items) = try JSONValue.parse(sealed) {
            for item in items {
                guard let index = item["index"]?.intValue, resources.indices.contains(index), case .object(var object) = resources[index] else { continue }
                object["authorization_token"] = item["token"]
                resources[index] = .object(object)
            }
        }
        let body: JSONValue = [
            "agent": ["type": "agent", "id": .string(fire.agentID), "version": .number(Double(fire.agentVersion))],
            "environment_id": .string(try row.decode(3)), "title": .string(try row.decode(8) as String), "resources": .array(resources),
            "vault_ids": .array(vaults), "initial_events": try JSONValue.parse(try row.decode(4) as String),
        ]
        do {
            var session = try await prepareSession(org: org, body, key: key)
            session.deploymentID = id
            session.budget = try row[7].map { try JSONValue.parse($0) }
            fire.session = session
        } catch let failure as DroverError {
            fire.error = ["type": "session_creation_rejected_error", "message": .string(failure.message)]
        }
        return fire
    }

    /// Writes a prepared fire on `connection` (the caller's transaction, which holds the
    /// deployment's row lock): the session, then its run. `scheduledAt` nil for a manual run.
    static func recordFire(_ fire: PreparedFire, deployment id: String, org: String, scheduledAt: Date?, key: String?,
                           on connection: PostgresConnection) async throws -> (run: String, session: String?, error: JSONValue?, wakes: [String]) {
        var session: String?
        var wakes: [String] = []
        if let prepared = fire.session { (session, wakes) = try await insertSession(prepared, org: org, key: key, on: connection) }
        let run = try await connection.query(
            """
            INSERT INTO drover.deployment_runs (id, org_id, deployment_id, agent_id, agent_version, trigger_type, scheduled_at, session_id, error)
            VALUES (drover.new_id('drun'), $1, $2, $3, $4, CASE WHEN $5::timestamptz IS NULL THEN 'manual' ELSE 'schedule' END, $5, $6, $7::jsonb)
            RETURNING id
            """, [org, id, fire.agentID, fire.agentVersion, scheduledAt, session, fire.error?.text])[0].decode(0) as String
        return (run, session, fire.error, wakes)
    }

    /// What one scheduler pass did.
    public struct SchedulerPass: Sendable {
        public var runs: [(deployment: String, run: String, session: String?, error: String?)] = []
        public var skipped = 0
        public var paused: [String] = []
        /// False when the lease moved during the pass (what was left is the successor's).
        public var leaseHeld = true
    }

    /// Takes or renews the scheduler's lease; its epoch, or nil while another process holds it.
    public func schedulerLease(holder: String, ttl: Double) async throws -> Int64? {
        try await mappingErrors {
            try await pool.query("SELECT drover.scheduler_lease('deployments', $1, $2)", [holder, ttl]).first?.decode(0) as Int64?
        }
    }

    /// Fires every deployment due at `now` (at most `batch`), each in a transaction of its own
    /// that first checks the lease is still `holder`'s at `epoch`: the runs due within `catchUp`
    /// seconds (older missed times are skipped and counted), the next time moved on. A paused
    /// deployment's times pass without runs. A scheduled fire that fails pauses its deployment
    /// with the error (`paused_reason`), as the SDK has it.
    public func fireDueDeployments(holder: String, epoch: Int64, now: Date, catchUp: Double, key: String?, batch: Int = 20) async throws -> SchedulerPass {
        var pass = SchedulerPass()
        let due = try await mappingErrors {
            try await pool.query(
                """
                SELECT id, org_id, paused_reason IS NOT NULL FROM drover.deployments
                 WHERE next_fire_at <= $1 AND archived_at IS NULL ORDER BY next_fire_at LIMIT $2
                """, [now, batch]).map { (try $0.decode(0) as String, try $0.decode(1) as String, try $0.decode(2) as Bool) }
        }
        for (id, org, wasPaused) in due {
            // What a fire makes is read before the transaction; a deployment changed in between
            // is left to the next pass.
            let prepared = wasPaused ? nil : try await prepareFire(deployment: id, org: org, key: key)
            var woken: [(String, [String])] = []
            let held = try await mappingErrors {
                try await pool.transaction { connection -> Bool in
                    guard try await connection.query("SELECT drover.scheduler_lease_held('deployments', $1, $2)", [holder, epoch])[0].decode(0) as Bool else {
                        return false
                    }
                    guard let row = try await connection.query(
                        """
                        SELECT schedule ->> 'expression', schedule ->> 'timezone', next_fire_at, paused_reason IS NOT NULL, version
                          FROM drover.deployments WHERE id = $1 AND next_fire_at <= $2 AND archived_at IS NULL FOR UPDATE SKIP LOCKED
                        """, [id, now]).first else { return true }
                    if let prepared, try row.decode(4) as Int != prepared.version { return true }
                    let cron = try CronSchedule(expression: try row.decode(0), timeZone: try row.decode(1))
                    let plan = cron.plan(due: try row.decode(2), now: now, catchUp: catchUp)
                    pass.skipped += plan.skipped
                    var fire = try row.decode(3) as Bool ? nil : prepared
                    var fired = false
                    for time in plan.fire {
                        guard let current = fire else { pass.skipped += 1; continue }
                        let already = try await connection.query(
                            "SELECT 1 FROM drover.deployment_runs WHERE deployment_id = $1 AND scheduled_at = $2", [id, time])
                        if !already.isEmpty { continue }
                        let result = try await Self.recordFire(current, deployment: id, org: org, scheduledAt: time, key: key, on: connection)
                        fired = true
                        pass.runs.append((id, result.run, result.session, result.error?["type"]?.stringValue))
                        if let session = result.session { woken.append((session, result.wakes)) }
                        if let error = result.error {
                            _ = try await connection.query(
                                "UPDATE drover.deployments SET paused_reason = jsonb_build_object('type', 'error', 'error', jsonb_build_object('type', $2::text)), updated_at = now() WHERE id = $1",
                                [id, error["type"]?.stringValue])
                            pass.paused.append(id)
                            fire = nil
                        }
                    }
                    _ = try await connection.query(
                        """
                        UPDATE drover.deployments
                           SET next_fire_at = $2, upcoming_at = $3::timestamptz[], last_run_at = CASE WHEN $4 THEN now() ELSE last_run_at END
                         WHERE id = $1
                        """, [id, plan.next, cron.upcoming(after: now, count: 5).map(\.postgresText), fired])
                    return true
                }
            }
            for (session, wakes) in woken { wake(session: session, wakes) }
            if !held {
                pass.leaseHeld = false
                break
            }
        }
        return pass
    }

    /// A model's list prices (`drover prices set`), US dollars per million tokens: what budgets
    /// are measured against.
    public func setPrice(model: String, input: Double, output: Double, cacheRead: Double, cacheWrite: Double) async throws {
        _ = try await mappingErrors {
            try await pool.query(
                """
                INSERT INTO drover.model_prices (model, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (model) DO UPDATE SET input_per_mtok = $2, output_per_mtok = $3, cache_read_per_mtok = $4,
                                                  cache_write_per_mtok = $5, updated_at = now()
                """, [model, input, output, cacheRead, cacheWrite])
        }
    }
}
