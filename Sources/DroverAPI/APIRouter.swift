import DroverCore
import DroverMCP
import DroverIO
import DroverResources
import DroverStore
import Foundation

/// The routes of `/v1`, as the Anthropic SDKs call them (`client.beta.agents`, `.environments`,
/// `.sessions`, `.sessions.events`). Every route but none needs a key; every query is scoped to
/// the key's organisation, so another organisation's id answers 404 like a missing one.
public struct APIRouter: Sendable {
    let store: TenantStore
    let hub: EventStreamHub
    let log: Log
    let console: ConsoleFiles
    let admissions: Admissions
    let metrics: APIMetrics
    /// Seals the secrets of credentials and repositories (nil: requests that carry one are refused
    /// with `vault_key_missing`).
    let vaultKey: String?
    /// The most an environment's `config.resources` may ask.
    let ceilings: ResourceCeilings
    /// Self-hosted environments' work queues, and the bell their long polls wait on (rung by the
    /// daemon's listener of `drover_work`).
    let workQueue: WorkQueue
    let workBell: Doorbell
    /// The wall clock deployments' schedules are read against (`DROVER_CLOCK` in tests).
    let clock: WallClock
    /// The operator's rule for the addresses the API reaches for a tenant (`--allow-internal`):
    /// webhook endpoints, and MCP servers and token endpoints `mcp_oauth_validate` probes.
    let outbound: AddressRule

    public init(
        store: TenantStore, hub: EventStreamHub, log: Log, console: ConsoleFiles = ConsoleFiles(), metrics: APIMetrics = APIMetrics(),
        vaultKey: String? = nil, ceilings: ResourceCeilings = ResourceCeilings(), workLeaseTTL: Int = 30, workBell: Doorbell = Doorbell(),
        clock: WallClock = .system, outbound: AddressRule = AddressRule()
    ) {
        self.clock = clock
        self.outbound = outbound
        self.store = store
        workQueue = WorkQueue(pool: store.pool, defaultTTL: workLeaseTTL)
        self.workBell = workBell
        self.ceilings = ceilings
        self.vaultKey = vaultKey
        self.hub = hub
        self.log = log
        self.console = console
        self.metrics = metrics
        admissions = Admissions(store: store)
    }

    /// A request's target split into path segments and query parameters (`types[]` → `types`).
    struct Target {
        var segments: [String]
        var query: [String: [String]]

        init(_ raw: String) {
            let parts = raw.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            // Foundation's decoding is costly and most segments have nothing to decode.
            segments = parts[0].split(separator: "/").map { $0.contains("%") ? String($0).removingPercentEncoding ?? String($0) : String($0) }
            query = [:]
            if parts.count == 2 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    var key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                    if key.hasSuffix("[]") { key.removeLast(2) }
                    let value = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
                    query[key, default: []].append(value)
                }
            }
        }

        func first(_ key: String) -> String? { query[key]?.first }

        func limit() throws -> Int {
            guard let text = first("limit") else { return 20 }
            guard let value = Int(text), (1...1000).contains(value) else { throw APIError.invalid("limit must be between 1 and 1000") }
            return value
        }

        func flag(_ key: String) -> Bool { first(key) == "true" }

        /// An RFC 3339 time (what the SDK sends for `created_at[…]`), checked here so that a
        /// malformed one is a 400, not a database error.
        func time(_ key: String) throws -> String? {
            guard let text = first(key) else { return nil }
            guard RFC3339.date(text) != nil else {
                throw APIError.invalid("\(key) must be an RFC 3339 time")
            }
            return text
        }
    }

    public func handle(_ request: HTTPServerRequest, requestID: String) async -> APIResponse {
        // The console's static files need no key (they hold none; the page asks for one).
        if let page = console.response(for: request) { return page }
        let started = ContinuousClock.now
        var principal: APIPrincipal?
        let response: APIResponse
        do {
            let admitted = try await admit(request)
            principal = admitted
            response = try await idempotent(request, org: admitted.orgID, requestID: requestID) {
                try await route(request, principal: admitted)
            }
        } catch {
            response = Self.failure(error, requestID: requestID, log: log)
        }
        var status = 200
        if case .json(let code, _, _) = response { status = code }
        if case .raw(let code, _, _, _) = response { status = code }
        let labels = APIMetrics.labels(method: request.method, path: request.path, authenticated: principal != nil)
        metrics.requests.inc(["method": labels.method, "route": labels.route, "status": String(status)])
        metrics.seconds.observe((ContinuousClock.now - started) / .seconds(1), ["route": labels.route])
        let segments = Target(request.path).segments
        let session = segments.count >= 3 && segments[1] == "sessions" ? JSONValue.string(segments[2]) : .null
        log.info(
            "request", ("request_id", .string(requestID)), ("method", .string(request.method)),
            ("path", .string(String(request.path.prefix { $0 != "?" }))), ("status", .number(Double(status))),
            ("org", principal.map { .string($0.orgID) } ?? .null), ("session", session),
            ("ms", .number(((ContinuousClock.now - started) / .milliseconds(1)).rounded())))
        return response
    }

    static func failure(_ error: any Error, requestID: String, log: Log) -> APIResponse {
        let apiError: APIError
        var headers: [(String, String)] = []
        switch error {
        case let error as APIError: apiError = error
        case let error as DroverError:
            apiError = APIError(error)
            // A 500 tells the client nothing of its cause; the operator's log does.
            if apiError.status == 500 { log.error("request failed", ("request_id", .string(requestID)), ("error", .string(String(reflecting: error)))) }
        case let limited as RateLimited:
            apiError = APIError(429, "rate_limit_error", "this organisation's \(limited.kind) limit per minute is reached")
            headers.append(("retry-after", String(limited.retryAfter)))
        case let refused as MethodNotAllowed:
            let allowed = refused.allowed.sorted().joined(separator: ", ")
            apiError = APIError(405, "invalid_request_error", "\(refused.template) does not take \(refused.method); it takes \(allowed)")
            headers.append(("allow", allowed))
        default:
            log.error("request failed", ("request_id", .string(requestID)), ("error", .string(String(reflecting: error))))
            apiError = APIError(500, "api_error", "internal error")
        }
        headers.append(("x-should-retry", apiError.shouldRetry ? "true" : "false"))
        return .json(status: apiError.status, body: apiError.json(requestID: requestID).text, headers: headers)
    }

    struct RateLimited: Error {
        var kind: String
        var retryAfter: Int
    }

    /// A served route asked with a method it does not take: 405 with `Allow`.
    struct MethodNotAllowed: Error {
        var method: String
        var template: String
        var allowed: Set<String>
    }

    /// Every route `route(_:principal:)` serves, as a template, with its methods: the one list the
    /// 405 answers and the metrics labels (`APIMetrics`) come from.
    static let routes: [String: Set<String>] = [
        "/v1/me": ["GET"],
        "/v1/fleet/leases": ["GET"], "/v1/fleet/harnesses": ["GET"], "/v1/fleet/pools": ["GET"], "/v1/fleet/queue": ["GET"],
        "/v1/fleet/queue_history": ["GET"], "/v1/fleet/verify": ["GET"], "/v1/fleet/work": ["GET"],
        "/v1/agents": ["GET", "POST"], "/v1/agents/{id}": ["GET", "POST"], "/v1/agents/{id}/archive": ["POST"], "/v1/agents/{id}/versions": ["GET"],
        "/v1/environments": ["GET", "POST"], "/v1/environments/{id}": ["GET", "POST", "DELETE"], "/v1/environments/{id}/archive": ["POST"],
        "/v1/environments/{id}/work": ["GET"], "/v1/environments/{id}/work/poll": ["GET"], "/v1/environments/{id}/work/stats": ["GET"],
        "/v1/environments/{id}/work/{id}": ["GET", "POST"], "/v1/environments/{id}/work/{id}/ack": ["POST"],
        "/v1/environments/{id}/work/{id}/heartbeat": ["POST"], "/v1/environments/{id}/work/{id}/stop": ["POST"],
        "/v1/sessions": ["GET", "POST"], "/v1/sessions/{id}": ["GET", "POST", "DELETE"], "/v1/sessions/{id}/archive": ["POST"],
        "/v1/sessions/{id}/resources": ["GET", "POST"], "/v1/sessions/{id}/resources/{id}": ["GET", "POST", "DELETE"],
        "/v1/sessions/{id}/events": ["GET", "POST"], "/v1/sessions/{id}/events/stream": ["GET"],
        "/v1/sessions/{id}/threads": ["GET"], "/v1/sessions/{id}/threads/{id}": ["GET"], "/v1/sessions/{id}/threads/{id}/archive": ["POST"],
        "/v1/sessions/{id}/threads/{id}/events": ["GET"], "/v1/sessions/{id}/threads/{id}/stream": ["GET"],
        "/v1/vaults": ["GET", "POST"], "/v1/vaults/{id}": ["GET", "POST", "DELETE"], "/v1/vaults/{id}/archive": ["POST"],
        "/v1/vaults/{id}/credentials": ["GET", "POST"], "/v1/vaults/{id}/credentials/{id}": ["GET", "POST", "DELETE"],
        "/v1/vaults/{id}/credentials/{id}/archive": ["POST"], "/v1/vaults/{id}/credentials/{id}/mcp_oauth_validate": ["POST"],
        "/v1/files": ["GET", "POST"], "/v1/files/{id}": ["GET", "DELETE"], "/v1/files/{id}/content": ["GET"],
        "/v1/memory_stores": ["GET", "POST"], "/v1/memory_stores/{id}": ["GET", "POST", "DELETE"], "/v1/memory_stores/{id}/archive": ["POST"],
        "/v1/memory_stores/{id}/memories": ["GET", "POST"], "/v1/memory_stores/{id}/memories/{id}": ["GET", "POST", "DELETE"],
        "/v1/memory_stores/{id}/memory_versions": ["GET"], "/v1/memory_stores/{id}/memory_versions/{id}": ["GET"],
        "/v1/memory_stores/{id}/memory_versions/{id}/redact": ["POST"],
        "/v1/dreams": ["GET", "POST"], "/v1/dreams/{id}": ["GET"], "/v1/dreams/{id}/archive": ["POST"], "/v1/dreams/{id}/cancel": ["POST"],
        "/v1/skills": ["GET", "POST"], "/v1/skills/{id}": ["GET", "DELETE"], "/v1/skills/{id}/versions": ["GET", "POST"],
        "/v1/skills/{id}/versions/{id}": ["GET", "DELETE"], "/v1/skills/{id}/versions/{id}/content": ["GET"],
        "/v1/deployments": ["GET", "POST"], "/v1/deployments/{id}": ["GET", "POST"], "/v1/deployments/{id}/archive": ["POST"],
        "/v1/deployments/{id}/pause": ["POST"], "/v1/deployments/{id}/unpause": ["POST"], "/v1/deployments/{id}/run": ["POST"],
        "/v1/deployment_runs": ["GET"], "/v1/deployment_runs/{id}": ["GET"],
        "/v1/webhooks": ["GET", "POST"], "/v1/webhooks/{id}": ["GET", "POST", "DELETE"], "/v1/webhooks/{id}/deliveries": ["GET"],
        "/v1/webhooks/{id}/regenerate_signing_secret": ["POST"],
    ]

    /// Routes the SDK has for the resources Drover serves that Drover does not serve yet, and
    /// what they are: answered 404 `not_found_error` saying so (docs/api.md, "Every SDK method"),
    /// never a bare "no route".
    static let notServed: [String: String] = [:]

    /// Creates count against the organisation's creates per minute, all else against requests.
    static func kind(_ request: HTTPServerRequest) -> String {
        let segments = Target(request.path).segments
        return request.method == "POST" && segments.count == 2 && ["agents", "environments", "sessions", "vaults", "files", "memory_stores", "dreams", "skills", "deployments", "webhooks"].contains(segments[1]) ? "create" : "request"
    }

    /// Authenticates the key and spends one of the organisation's requests of this minute.
    func admit(_ request: HTTPServerRequest) async throws -> APIPrincipal {
        var secret = request.headers["x-api-key"]
        if secret == nil, let authorization = request.headers["authorization"], authorization.lowercased().hasPrefix("bearer ") {
            secret = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        guard let secret, !secret.isEmpty else { throw APIError(401, "authentication_error", "an API key is required: x-api-key or Authorization: Bearer") }
        // Environment keys and sessions tokens: scoped to one environment or item, checked per
        // request (revocation and an item's stop take effect at once), outside the organisation's
        // per-minute allowance.
        if WorkQueue.isWorkCredential(secret) { return try await admitWorker(secret) }
        let kind = Self.kind(request)
        switch try await admissions.admit(secret, kind: kind) {
        case .admitted(let principal): return principal
        case .unknownKey: throw APIError.unauthenticated
        case .limited(let retryAfter): throw RateLimited(kind: kind == "create" ? "creates" : "requests", retryAfter: retryAfter)
        }
    }

    /// `Idempotency-Key` on a POST: the first response is kept for 24 h and returned again for the
    /// same request; the key with another request is refused (409 while the first is in flight).
    func idempotent(_ request: HTTPServerRequest, org: String, requestID: String, _ body: () async throws -> APIResponse) async throws -> APIResponse {
        guard request.method == "POST", let key = request.headers["idempotency-key"], !key.isEmpty else { return try await body() }
        guard key.utf8.count <= 255 else { throw APIError.invalid("Idempotency-Key may be at most 255 bytes") }
        let fingerprint = request.method + " " + request.path.prefix { $0 != "?" } + "\n" + String(decoding: request.body, as: UTF8.self)
        switch try await store.beginIdempotent(org: org, key: key, request: fingerprint) {
        case .replay(let status, let stored):
            return .json(status: status, body: stored, headers: [("idempotent-replayed", "true")])
        case .inProgress:
            throw APIError(409, "conflict_error", "a request with this Idempotency-Key is still in progress")
        case .mismatch:
            throw APIError.invalid("this Idempotency-Key was used for another request")
        case .new:
            let response: APIResponse
            do {
                response = try await body()
            } catch {
                response = Self.failure(error, requestID: requestID, log: log)
            }
            if case .json(let status, let text, _) = response {
                try? await store.endIdempotent(org: org, key: key, status: status, body: text)
            }
            return response
        }
    }

    static func ok(_ body: JSONValue) -> APIResponse { .json(status: 200, body: body.text, headers: []) }
    static func ok(_ resource: some APIResource) throws -> APIResponse { .json(status: 200, body: try resource.jsonText, headers: []) }
    static func ok(_ page: APIPage<some APIResource>) throws -> APIResponse { .json(status: 200, body: try page.jsonText, headers: []) }

    func body(_ request: HTTPServerRequest) throws -> JSONValue {
        guard !request.body.isEmpty else { return .object([:]) }
        guard let value = try? JSONValue.parse(request.body), case .object = value else {
            throw APIError.invalid("the body must be a JSON object")
        }
        return value
    }

    /// An environment's create or update body, its `config.resources` within the ceilings.
    func environmentBody(_ request: HTTPServerRequest) throws -> JSONValue {
        let value = try body(request)
        if let violation = ceilings.violation(in: value["config"]?["resources"]) { throw APIError.invalid(violation) }
        return value
    }

    func route(_ request: HTTPServerRequest, principal: APIPrincipal) async throws -> APIResponse {
        let org = principal.orgID
        let target = Target(request.path)
        let path = target.segments
        guard path.first == "v1", path.count >= 2 else { throw APIError.notFound("no route \(request.method) \(request.path.prefix { $0 != "?" })") }
        if let credential = principal.work { try await authorizeWorker(request, path: path, credential: credential, org: org) }
        if let response = try await routeWork(request, target: target, principal: principal) { return response }
        if let response = try await routeFiles(request, target: target, org: org) { return response }
        if let response = try await routeMemory(request, target: target, principal: principal) { return response }
        if let response = try await routeDreams(request, target: target, principal: principal) { return response }
        if let response = try await routeSkills(request, target: target, org: org) { return response }
        if let response = try await routeDeployments(request, target: target, org: org) { return response }
        if let response = try await routeWebhooks(request, target: target, org: org) { return response }
        let method = request.method
        // A thread is a session row of its own, but not a session to the API: only under its session.
        if path[1] == "sessions", path.count >= 3, path[2].hasPrefix(SessionStore.threadPrefix) { throw APIError.notFound("no session \(path[2])") }
        switch (path[1], path.count, method) {
        // Beyond Managed Agents: what the key is (the console asks, to show the fleet pages or not).
        case ("me", 2, "GET"):
            let name = try await store.organizationName(id: org)
            return Self.ok(["type": "key", "id": .string(principal.keyID), "organization": .string(name), "operator": .bool(principal.operator_)])
        // The fleet, across organisations: operator keys only.
        case ("fleet", 3, "GET"):
            guard principal.operator_ else { throw APIError.forbidden }
            if path[2] == "work" { return try Self.ok(await workQueue.fleet()) }
            if path[2] == "verify" {
                let report = try await Verifier(pool: store.pool).run()
                return Self.ok([
                    "sessions": .number(Double(report.sessions)), "events": .number(Double(report.events)),
                    "breaches": .array(report.breaches.map {
                        ["check": .string($0.check), "session": .string($0.session), "seq": $0.seq.map { .number(Double($0)) } ?? .null,
                         "detail": .string($0.detail)]
                    }),
                ])
            }
            return try Self.ok(await store.fleet(path[2]))
        // Agents
        case ("agents", 2, "POST"): return try Self.ok(await store.createAgent(org: org, try body(request)))
        case ("agents", 2, "GET"):
            return try Self.ok(await store.agents(
                org: org, limit: try target.limit(), page: target.first("page"), includeArchived: target.flag("include_archived"),
                createdFrom: try target.time("created_at[gte]"), createdTo: try target.time("created_at[lte]")))
        case ("agents", 3, "GET"):
            let version = try target.first("version").map { text -> Int in
                guard let value = Int(text) else { throw APIError.invalid("version must be a whole number") }
                return value
            }
            return try Self.ok(await store.agent(org: org, id: path[2], version: version))
        case ("agents", 3, "POST"): return try Self.ok(await store.updateAgent(org: org, id: path[2], try body(request)))
        case ("agents", 4, "POST") where path[3] == "archive": return try Self.ok(await store.archiveAgent(org: org, id: path[2]))
        case ("agents", 4, "GET") where path[3] == "versions":
            return try Self.ok(await store.agentVersions(org: org, id: path[2], limit: try target.limit(), page: target.first("page")))
        // Environments
        case ("environments", 2, "POST"): return try Self.ok(await store.createEnvironment(org: org, try environmentBody(request)))
        case ("environments", 2, "GET"):
            return try Self.ok(await store.environments(
                org: org, limit: try target.limit(), page: target.first("page"), includeArchived: target.flag("include_archived")))
        case ("environments", 3, "GET"): return try Self.ok(await store.environment(org: org, id: path[2]))
        case ("environments", 3, "POST"): return try Self.ok(await store.updateEnvironment(org: org, id: path[2], try environmentBody(request)))
        case ("environments", 3, "DELETE"): return try Self.ok(await store.deleteEnvironment(org: org, id: path[2]))
        case ("environments", 4, "POST") where path[3] == "archive": return try Self.ok(await store.archiveEnvironment(org: org, id: path[2]))
        // Sessions
        case ("sessions", 2, "POST"): return try Self.ok(await store.createSession(org: org, try body(request), key: vaultKey))
        case ("sessions", 2, "GET"):
            var filter = TenantStore.SessionFilter()
            filter.agentID = target.first("agent_id")
            filter.id = target.first("id")
            // `status` (one) is Drover's older spelling of `statuses[]`.
            filter.statuses = target.query["statuses"] ?? target.query["status"]
            filter.agentVersion = try target.first("agent_version").map { text in
                guard let version = Int(text) else { throw APIError.invalid("agent_version must be a whole number") }
                return version
            }
            filter.createdAfter = try target.time("created_at[gt]")
            filter.createdFrom = try target.time("created_at[gte]")
            filter.createdBefore = try target.time("created_at[lt]")
            filter.createdTo = try target.time("created_at[lte]")
            filter.deploymentID = target.first("deployment_id")
            filter.memoryStoreID = target.first("memory_store_id")
            switch target.first("order") {
            case nil, "desc": break
            case "asc": filter.ascending = true
            default: throw APIError.invalid("order must be asc or desc")
            }
            return try Self.ok(await store.sessions(
                org: org, limit: try target.limit(), page: target.first("page"), includeArchived: target.flag("include_archived"), filter: filter))
        case ("sessions", 3, "GET"): return try Self.ok(await store.session(org: org, id: path[2]))
        case ("sessions", 3, "POST"): return try Self.ok(await store.updateSession(org: org, id: path[2], try body(request)))
        case ("sessions", 3, "DELETE"): return try Self.ok(await store.deleteSession(org: org, id: path[2]))
        case ("sessions", 4, "POST") where path[3] == "archive": return try Self.ok(await store.archiveSession(org: org, id: path[2]))
        // A session's resources: repositories set at creation, files also added and removed later
        case ("sessions", 4, "GET") where path[3] == "resources": return try Self.ok(await store.sessionResources(org: org, session: path[2]))
        case ("sessions", 5, "GET") where path[3] == "resources":
            return try Self.ok(await store.sessionResource(org: org, session: path[2], id: path[4]))
        case ("sessions", 4, "POST") where path[3] == "resources":
            return try Self.ok(await store.addSessionResource(org: org, session: path[2], try body(request)))
        case ("sessions", 5, "DELETE") where path[3] == "resources":
            return try Self.ok(await store.deleteSessionResource(org: org, session: path[2], id: path[4]))
        case ("sessions", 5, "POST") where path[3] == "resources":
            return try Self.ok(await store.updateSessionResource(org: org, session: path[2], id: path[4], try body(request), key: vaultKey))
        // Vaults and credentials (secrets are write-only)
        case ("vaults", 2, "POST"): return try Self.ok(await store.createVault(org: org, try body(request)))
        case ("vaults", 2, "GET"):
            return try Self.ok(await store.vaults(org: org, limit: try target.limit(), page: target.first("page"), includeArchived: target.flag("include_archived")))
        case ("vaults", 3, "GET"): return try Self.ok(await store.vault(org: org, id: path[2]))
        case ("vaults", 3, "POST"): return try Self.ok(await store.updateVault(org: org, id: path[2], try body(request)))
        case ("vaults", 3, "DELETE"): return try Self.ok(await store.deleteVault(org: org, id: path[2]))
        case ("vaults", 4, "POST") where path[3] == "archive": return try Self.ok(await store.archiveVault(org: org, id: path[2]))
        case ("vaults", 4, "POST") where path[3] == "credentials":
            return try Self.ok(await store.createCredential(org: org, vault: path[2], try body(request), key: vaultKey))
        case ("vaults", 4, "GET") where path[3] == "credentials":
            return try Self.ok(await store.credentials(
                org: org, vault: path[2], limit: try target.limit(), page: target.first("page"), includeArchived: target.flag("include_archived")))
        case ("vaults", 5, "GET") where path[3] == "credentials": return try Self.ok(await store.credential(org: org, vault: path[2], id: path[4]))
        case ("vaults", 5, "DELETE") where path[3] == "credentials": return try Self.ok(await store.deleteCredential(org: org, vault: path[2], id: path[4]))
        case ("vaults", 5, "POST") where path[3] == "credentials":
            return try Self.ok(await store.updateCredential(org: org, vault: path[2], id: path[4], try body(request), key: vaultKey))
        case ("vaults", 6, "POST") where path[3] == "credentials" && path[5] == "archive":
            return try Self.ok(await store.archiveCredential(org: org, vault: path[2], id: path[4]))
        case ("vaults", 6, "POST") where path[3] == "credentials" && path[5] == "mcp_oauth_validate":
            return try Self.ok(await validateCredential(org: org, vault: path[2], id: path[4]))
        // Events
        case ("sessions", 4, "POST") where path[3] == "events":
            guard case .array(let events)? = try body(request)["events"] else { throw APIError.invalid("events: an array is required") }
            return try Self.ok(await store.sendEvents(org: org, session: path[2], events))
        case ("sessions", 4, "GET") where path[3] == "events":
            let order = target.first("order") ?? "asc"
            guard order == "asc" || order == "desc" else { throw APIError.invalid("order must be asc or desc") }
            return try Self.ok(await store.events(
                org: org, session: path[2], limit: try target.limit(), page: target.first("page"), descending: order == "desc",
                types: target.query["types"]))
        case ("sessions", 5, "GET") where path[3] == "events" && path[4] == "stream":
            return try await stream(request, target: target, org: org, session: path[2])
        // Session threads: listed, read, archived and streamed under their session.
        case ("sessions", 4, "GET") where path[3] == "threads":
            return try Self.ok(await store.threads(org: org, session: path[2], limit: try target.limit(), page: target.first("page")))
        case ("sessions", 5, "GET") where path[3] == "threads": return try Self.ok(await store.thread(org: org, session: path[2], id: path[4]))
        case ("sessions", 6, "POST") where path[3] == "threads" && path[5] == "archive":
            return try Self.ok(await store.archiveThread(org: org, session: path[2], id: path[4]))
        case ("sessions", 6, "GET") where path[3] == "threads" && path[5] == "events":
            _ = try await store.thread(org: org, session: path[2], id: path[4])
            return try Self.ok(await store.events(
                org: org, session: path[4], limit: try target.limit(), page: target.first("page"), descending: false, types: nil))
        case ("sessions", 6, "GET") where path[3] == "threads" && path[5] == "stream":
            _ = try await store.thread(org: org, session: path[2], id: path[4])
            return try await stream(request, target: target, org: org, session: path[4])
        default:
            let template = APIMetrics.route(request.path)
            if let allowed = Self.routes[template], !allowed.contains(method) {
                throw MethodNotAllowed(method: method, template: template, allowed: allowed)
            }
            if let what = Self.notServed[template] {
                throw APIError.notFound("Drover does not serve \(what) yet (docs/api.md, Every SDK method)")
            }
            throw APIError.notFound("no route \(method) \(request.path.prefix { $0 != "?" })")
        }
    }

    /// Server-sent events. Without a position, events from now on (as Managed Agents does); with
    /// `Last-Event-ID` or `?after=` an event id, every event after that one first, then live ones.
    /// `event_deltas` (`agent.message`, `agent.thinking`; repeated, `[]` or comma-separated) adds
    /// previews of those events while the model writes them; the harnesses hear at once that the
    /// session is watched.
    func stream(_ request: HTTPServerRequest, target: Target, org: String, session: String) async throws -> APIResponse {
        let previews = Set((target.query["event_deltas"] ?? []).flatMap { $0.split(separator: ",").map(String.init) })
        if let unknown = previews.subtracting(Self.previewable).sorted().first {
            throw APIError.invalid("event_deltas: \(unknown) is not one of agent.message, agent.thinking")
        }
        _ = try await store.session(org: org, id: session)  // another organisation's id: 404 before streaming
        let seq: Int64
        if let id = request.headers["last-event-id"] ?? target.first("after"), !id.isEmpty {
            seq = try await store.seq(org: org, session: session, eventID: id)
        } else {
            seq = try await store.lastSeqs([session])[session] ?? 0
        }
        if !previews.isEmpty { try await store.watchPreviews(sessions: [session]) }
        return .stream(hub.subscribe(session: session, after: seq, previews: previews), headers: [])
    }

    /// `mcp_oauth_validate`: probes an mcp_oauth credential against its MCP server, refreshing it
    /// once if the server refuses its token (`CredentialProbe`); a token the refresh gave is
    /// stored, as a harness's refresh would be.
    func validateCredential(org: String, vault: String, id: String) async throws -> JSONValue {
        let (credential, type) = try await store.openedCredential(org: org, vault: vault, id: id, key: vaultKey)
        guard type == "mcp_oauth" else { throw APIError.invalid("credential \(id) is \(type): only mcp_oauth credentials are validated") }
        let outcome = await CredentialProbe(rule: outbound).validate(credential)
        if let fresh = outcome.refreshed, let key = vaultKey {
            _ = try await SessionStore(pool: store.pool).storeRefreshedToken(
                credential: credential.id, version: credential.version, accessToken: fresh.accessToken, expiresAt: fresh.expiresAt,
                refreshToken: fresh.refreshToken, key: key)
        }
        return [
            "type": "vault_credential_validation", "credential_id": .string(credential.id), "vault_id": .string(vault),
            "status": .string(outcome.status), "has_refresh_token": .bool(credential.refresh != nil), "mcp_probe": outcome.mcpProbe,
            "refresh": outcome.refresh, "validated_at": .string(RFC3339.string(Date())),
        ]
    }

    /// The event types `event_deltas` may name (the SDK's `BetaManagedAgentsDeltaType`).
    static let previewable: Set<String> = ["agent.message", "agent.thinking"]
}
