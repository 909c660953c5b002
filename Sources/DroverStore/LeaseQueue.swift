import DroverCore
import DroverPostgres
import Foundation

/// The lease queue: claim runnable sessions, keep leases alive, give them back.
public struct LeaseQueue: Sendable {
    /// Channel on which `send_event` and `release` announce sessions that became runnable.
    public static let runnableChannel = "drover_runnable"
    /// Channel on which `send_event` announces user events for sessions already running.
    public static let userEventChannel = "drover_user_event"

    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// Claims up to `max` runnable sessions for `owner` with a lease of `ttl` seconds.
    public func claim(max: Int, owner: HarnessID, ttl: Double) async throws -> [Lease] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT session_id, lease_epoch, lease_expires_at, last_seq, agent_id, agent_version, environment_id, attempt
                  FROM drover.claim($1, $2, $3)
                """,
                [owner.rawValue, max, Self.milliseconds(ttl)]
            ).map { row in
                Lease(
                    sessionID: SessionID(try row.decode(0)), owner: owner, epoch: try row.decode(1),
                    expiresAt: try row.decode(2), lastSeq: try row.decode(3), agentID: try row.decode(4),
                    agentVersion: try row.decode(5), environmentID: try row.decode(6), attempt: try row.decode(7))
            }
        }
    }

    /// Extends `lease` by `ttl` seconds from now; `lease_lost` if it is no longer held.
    public func heartbeat(_ lease: Lease, ttl: Double) async throws -> Lease {
        try await mappingErrors {
            let rows = try await pool.query(
                "SELECT drover.heartbeat($1, $2, $3, $4)",
                [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, Self.milliseconds(ttl)])
            var extended = lease
            extended.expiresAt = try rows[0].decode(0)
            return extended
        }
    }

    /// Ends `lease`. `handledThrough` is the last seq the holder read: if user events arrived
    /// after it, an idle release re-queues the session. Returns the session's new status.
    @discardableResult
    public func release(_ lease: Lease, to status: SessionStatus = .idle, handledThrough: Int64? = nil) async throws -> SessionStatus {
        try await mappingErrors {
            let rows = try await pool.query(
                "SELECT drover.release($1, $2, $3, $4, $5)",
                [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, status.rawValue, handledThrough])
            return SessionStatus(rawValue: try rows[0].decode(0)) ?? .idle
        }
    }

    static func milliseconds(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }
}
