import DroverCore
import DroverIO
import DroverStore
import Foundation

/// The work queue of self-hosted environments, as the SDK's `client.beta.environments.work` and
/// its `EnvironmentWorker` call it (`/v1/environments/{id}/work…`), and what an environment key or
/// a work item's sessions token may do elsewhere. Which credential each endpoint takes follows the
/// SDK's documentation of it:
///
/// | endpoint | API key | environment key | sessions token |
/// |---|---|---|---|
/// | poll, list | – | ✓ | – |
/// | ack, heartbeat | – | ✓ | its item |
/// | stop | ✓ | ✓ | its item |
/// | stats | ✓ | ✓ | – |
/// | retrieve, update | ✓ | – | – |
///
/// Beyond the work endpoints an environment key reaches its environment's sessions and a sessions
/// token its item's session: retrieve, list and stream events, and send tool results. Nothing
/// else: another route is 403, another environment's or session's id 404.
extension APIRouter {
    /// What a worker credential authenticates as, or `unauthenticated`.
    func admitWorker(_ secret: String) async throws -> APIPrincipal {
        guard let credential = try await workQueue.credential(secret) else { throw APIError.unauthenticated }
        switch credential {
        case .environment(let keyID, let org, _):
            return APIPrincipal(keyID: keyID, orgID: org, operator_: false, work: credential)
        case .workItem(let org, _, let work, _):
            return APIPrincipal(keyID: work, orgID: org, operator_: false, work: credential)
        }
    }

    /// Refuses what a worker credential may not do outside the work endpoints (which check their
    /// own): only a session of its environment (or its item's), and only reading it and its
    /// events and sending tool results.
    func authorizeWorker(_ request: HTTPServerRequest, path: [String], credential: WorkQueue.Credential, org: String) async throws {
        if path.count >= 4, path[1] == "environments", path[3] == "work" { return }
        // A sessions token reads and writes the memories of exactly the stores its session has
        // attached (writes only where attached read_write), as the SDK's worker syncs them.
        if path.count >= 4, path[1] == "memory_stores", path[3] == "memories", case .workItem(_, _, _, let session) = credential {
            guard let access = try await workQueue.storeAccess(store: path[2], session: session) else {
                throw APIError.notFound("no memory store \(path[2])")
            }
            if request.method != "GET" && access != "read_write" {
                throw APIError(403, "permission_error", "memory store \(path[2]) is attached read_only to session \(session)")
            }
            return
        }
        // A sessions token reads the versions of the skills its session's agent names, as the
        // SDK's worker downloads them into its workdir.
        if path.count >= 5, path[1] == "skills", path[3] == "versions", request.method == "GET", case .workItem(_, _, _, let session) = credential {
            guard try await workQueue.skillNamed(path[2], session: session) else { throw APIError.notFound("no skill \(path[2])") }
            return
        }
        let readable = request.method == "GET" && (path.count == 3 || (path.count == 4 && path[3] == "events")
                                                     || (path.count == 5 && path[3] == "events" && path[4] == "stream"))
        let sends = request.method == "POST" && path.count == 4 && path[3] == "events"
        guard path.count >= 3, path[1] == "sessions", readable || sends else {
            throw APIError(403, "permission_error", "an environment key or a work item's token may not use \(request.method) \(APIMetrics.route(request.path))")
        }
        let session = path[2]
        switch credential {
        case .environment(_, _, let environment):
            guard try await workQueue.environment(ofSession: session, org: org) == environment else {
                throw APIError.notFound("no session \(session)")
            }
        case .workItem(_, _, _, let own):
            guard own == session else { throw APIError.notFound("no session \(session)") }
        }
        if sends {
            guard case .array(let events)? = try body(request)["events"] else { return }
            for event in events {
                let type = event["type"]?.stringValue ?? ""
                guard type == "user.tool_result" || type == "user.custom_tool_result" else {
                    throw APIError(403, "permission_error", "an environment key or a work item's token may send only user.tool_result and user.custom_tool_result, not \(type)")
                }
            }
        }
    }

    /// `/v1/environments/{id}/work…`: nil when the path is not one of them.
    func routeWork(_ request: HTTPServerRequest, target: Target, principal: APIPrincipal) async throws -> APIResponse? {
        let path = target.segments
        guard path.count >= 4, path[1] == "environments", path[3] == "work" else { return nil }
        let environment = path[2]
        let method = request.method
        let action: WorkAction
        switch (path.count, method) {
        case (4, "GET"): action = .list
        case (5, "GET") where path[4] == "poll": action = .poll
        case (5, "GET") where path[4] == "stats": action = .stats
        case (5, "GET"): action = .retrieve
        case (5, "POST") where path[4] != "poll" && path[4] != "stats": action = .update
        case (6, "POST") where path[5] == "ack": action = .ack
        case (6, "POST") where path[5] == "heartbeat": action = .heartbeat
        case (6, "POST") where path[5] == "stop": action = .stop
        default: return nil
        }
        let work = path.count >= 5 ? path[4] : nil
        try await authorize(action, environment: environment, work: work, principal: principal)
        switch action {
        case .poll:
            return try Self.ok(await poll(request, target: target, environment: environment))
        case .list:
            return try Self.ok(await workQueue.list(environment: environment, limit: try target.limit(), page: target.first("page")))
        case .stats:
            return try Self.ok(await workQueue.stats(environment: environment))
        case .retrieve:
            return try Self.ok(await workQueue.retrieve(environment: environment, work: work!))
        case .update:
            guard let metadata = try body(request)["metadata"] else { throw APIError.invalid("metadata: an object is required") }
            return try Self.ok(await workQueue.update(environment: environment, work: work!, metadata: metadata))
        case .ack:
            return try Self.ok(await workQueue.ack(environment: environment, work: work!))
        case .heartbeat:
            return try Self.ok(await heartbeat(target: target, environment: environment, work: work!))
        case .stop:
            let force = try body(request)["force"]?.boolValue ?? false
            return try Self.ok(await workQueue.stop(environment: environment, work: work!, force: force))
        }
    }

    enum WorkAction {
        case poll, list, stats, retrieve, update, ack, heartbeat, stop
    }

    /// The credential table above.
    func authorize(_ action: WorkAction, environment: String, work: String?, principal: APIPrincipal) async throws {
        switch principal.work {
        case nil:
            guard [.stop, .stats, .retrieve, .update].contains(action) else {
                throw APIError(403, "permission_error", "this work endpoint takes the environment key, not an API key")
            }
            try await workQueue.checkEnvironment(environment, org: principal.orgID)
        case .environment(_, _, let own)?:
            guard own == environment else { throw APIError.notFound("no environment \(environment)") }
            guard ![.retrieve, .update].contains(action) else {
                throw APIError(403, "permission_error", "this work endpoint takes an API key, not the environment key")
            }
        case .workItem(_, let ownEnvironment, let ownWork, _)?:
            guard [.ack, .heartbeat, .stop].contains(action) else {
                throw APIError(403, "permission_error", "a work item's token may only acknowledge, heartbeat and stop its item")
            }
            guard ownEnvironment == environment, ownWork == work else { throw APIError.notFound("no work item \(work ?? "")") }
        }
    }

    /// A long poll: claims at once if it can, else waits for the queue's notification (`drover_work`,
    /// rung by the daemon's listener) up to `block_ms`, claiming again at each ring.
    func poll(_ request: HTTPServerRequest, target: Target, environment: String) async throws -> JSONValue {
        var blockMs = 0
        if let text = target.first("block_ms") {
            guard let value = Int(text), (1...999).contains(value) else { throw APIError.invalid("block_ms must be 1 to 999") }
            blockMs = value
        }
        var reclaimMs = 5_000
        if let text = target.first("reclaim_older_than_ms") {
            guard let value = Int(text), (0...86_400_000).contains(value) else {
                throw APIError.invalid("reclaim_older_than_ms must be 0 to 86400000")
            }
            reclaimMs = value
        }
        let worker = request.headers["anthropic-worker-id"].map { String($0.prefix(200)) }
        let deadline = ContinuousClock.now + .milliseconds(blockMs)
        while true {
            let (claim, expired) = try await workQueue.poll(environment: environment, worker: worker, reclaimOlderThanMs: reclaimMs)
            if expired > 0 { metrics.workReclaims.inc(["kind": "lease_expired"], by: Double(expired)) }
            if let claim {
                metrics.workPolls.inc(["outcome": "claimed"])
                if claim.reclaimed { metrics.workReclaims.inc(["kind": "unacknowledged"]) }
                return claim.item
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                metrics.workPolls.inc(["outcome": "empty"])
                return .null
            }
            _ = await workBell.wait(timeout: left / .seconds(1))
        }
    }

    /// A heartbeat; a stale `expected_last_heartbeat` is 412 `heartbeat_precondition_failed` with
    /// the lease as the server holds it (`details.current_state`).
    func heartbeat(target: Target, environment: String, work: String) async throws -> JSONValue {
        var ttl: Int?
        if let text = target.first("desired_ttl_seconds") {
            guard let value = Int(text), value > 0 else { throw APIError.invalid("desired_ttl_seconds must be a positive whole number") }
            ttl = value
        }
        let (lease, matched) = try await workQueue.heartbeat(
            environment: environment, work: work, expected: target.first("expected_last_heartbeat"), desiredTTL: ttl)
        guard case .object(var fields) = lease else { throw APIError(500, "api_error", "internal error") }
        guard matched else {
            metrics.workHeartbeats.inc(["outcome": "refused"])
            throw APIError(
                412, "invalid_request_error",
                "expected_last_heartbeat does not match the stored heartbeat: another worker may hold the lease",
                details: ["error_code": "heartbeat_precondition_failed", "current_state": lease])
        }
        metrics.workHeartbeats.inc(["outcome": fields["lease_extended"]?.boolValue == true ? "extended" : "stopping"])
        fields["type"] = "work_heartbeat"
        return .object(fields)
    }
}
