import DroverCore
import DroverPostgres
import Foundation

/// A sandbox pool as the registry knows it.
public struct PoolRecord: Sendable, Equatable {
    public var id: String
    public var address: String
    public var capacity: Int
    public var sandboxes: Int
    public var runningCalls: Int
    public var status: String
    public var heartbeatAge: Double
}

/// The registry of sandbox pools and sandboxes in Postgres: pools announce themselves and their
/// load; harnesses find a pool by load and a session's live sandbox.
public struct PoolRegistry: Sendable {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// Announces a pool; readers treat it as gone once it has been silent for `silentAfter` seconds.
    public func register(id: String, address: String, capacity: Int, silentAfter: Double) async throws {
        try await mappingErrors {
            try await pool.query(
                "SELECT drover.register_pool($1, $2, $3, $4)", [id, address, capacity, LeaseQueue.milliseconds(silentAfter)])
        }
    }

    /// Reports the pool's load and live sandboxes (its rows heal to match: see migration 0009);
    /// returns those of them whose session was terminated or deleted, for the pool to destroy.
    /// Touches no other pool's rows.
    /// `waiting`: provisions waiting in line for room.
    public func heartbeat(id: String, runningCalls: Int, live: [String], waiting: Int = 0) async throws -> [String] {
        try await mappingErrors {
            try await pool.query("SELECT drover.pool_heartbeat($1, $2, $3::text[], $4)", [id, runningCalls, live, waiting]).map {
                try $0.decode(0)
            }
        }
    }

    public func stopped(id: String) async throws {
        try await mappingErrors { try await pool.query("SELECT drover.pool_stopped($1)", [id]) }
    }

    public func recordSandbox(id: String, pool poolID: String, session: String?) async throws {
        try await mappingErrors { try await pool.query("SELECT drover.record_sandbox($1, $2, $3)", [id, poolID, session]) }
    }

    /// Records `id` as the sandbox of the lease's session, fenced by the lease: a stale holder is
    /// refused (`lease_lost`). Returns the session's sandbox: `id`, or one recorded before it
    /// (then the caller destroys its own).
    public func recordSessionSandbox(id: String, pool poolID: String, lease: Lease) async throws -> String {
        try await mappingErrors {
            try await pool.query(
                "SELECT drover.record_session_sandbox($1, $2, $3, $4, $5)",
                [id, poolID, lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch])[0].decode(0)
        }
    }

    /// Records why a sandbox ended (`idle` and `evicted` are reclaims).
    public func sandboxEnded(id: String, reason: String) async throws {
        try await mappingErrors { try await pool.query("SELECT drover.sandbox_ended($1, $2)", [id, reason]) }
    }

    /// Pools, least loaded live ones first. Load is the pool's active sandboxes as recorded when
    /// they were provisioned (current at once, unlike the heartbeat's figure) plus the provisions
    /// waiting in line there, for its capacity; then running calls.
    public func pools() async throws -> [PoolRecord] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT p.id, p.address, p.capacity, a.active, p.running_calls,
                       CASE WHEN p.status = 'up' AND NOT drover.pool_is_live(p) THEN 'silent' ELSE p.status END,
                       extract(epoch FROM clock_timestamp() - p.last_heartbeat_at)::float8
                  FROM drover.sandbox_pools p
                  CROSS JOIN LATERAL (SELECT count(*)::int AS active FROM drover.sandboxes s
                                       WHERE s.pool_id = p.id AND s.status = 'active') a
                 ORDER BY NOT drover.pool_is_live(p), (a.active + p.waiting)::float8 / greatest(p.capacity, 1), p.running_calls, p.id
                """
            ).map { row in
                PoolRecord(
                    id: try row.decode(0), address: try row.decode(1), capacity: try row.decode(2), sandboxes: try row.decode(3),
                    runningCalls: try row.decode(4), status: try row.decode(5), heartbeatAge: try row.decode(6))
            }
        }
    }

    /// The live sandbox a lease holder recorded for a session, with its pool's address, if any
    /// (a pool records every sandbox it provisions; only a holder's record makes it the session's).
    public func sandbox(forSession session: String) async throws -> (sandbox: String, pool: String, address: String)? {
        try await mappingErrors {
            let rows = try await pool.query(
                """
                SELECT s.id, p.id, p.address FROM drover.sandboxes s JOIN drover.sandbox_pools p ON p.id = s.pool_id
                 WHERE s.session_id = $1 AND s.status = 'active' AND drover.pool_is_live(p) AND s.lease_epoch IS NOT NULL
                 ORDER BY s.created_at LIMIT 1
                """, [session])
            guard let row = rows.first else { return nil }
            return (try row.decode(0), try row.decode(1), try row.decode(2))
        }
    }
}

extension PoolRegistry {
    /// The session's latest sandbox, when its pool reclaimed it (`idle`, `evicted`): what a fresh
    /// sandbox replaces without the model having been told. (A sandbox destroyed or lost under a
    /// call was reported in that call's result.)
    public func reclaimedSandbox(forSession session: String) async throws -> (sandbox: String, reason: String)? {
        try await mappingErrors {
            let rows = try await pool.query(
                """
                SELECT id, status, coalesce(end_reason, '') FROM drover.sandboxes
                 WHERE session_id = $1 AND lease_epoch IS NOT NULL
                 ORDER BY created_at DESC LIMIT 1
                """, [session])
            guard let row = rows.first, try row.decode(1) as String == "reclaimed" else { return nil }
            return (try row.decode(0), try row.decode(2))
        }
    }

    /// Whether a lease holder ever recorded a sandbox for the session, live or not.
    public func hasSandboxRecord(forSession session: String) async throws -> Bool {
        try await mappingErrors {
            try await pool.query(
                "SELECT EXISTS (SELECT 1 FROM drover.sandboxes WHERE session_id = $1 AND lease_epoch IS NOT NULL)", [session])[0].decode(0)
        }
    }
}
