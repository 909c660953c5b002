import DroverCore
import DroverPostgres
import Foundation

/// The lease queue: claim runnable sessions, keep leases alive, give them back.
public struct LeaseQueue: Sendable {
    /// Channel on which `send_event` and `release` announce sessions that became runnable.
    public static let runnableChannel = "drover_runnable"
    /// Channel on which `send_event` announces user events for sessions already running.
    public static let userEventChannel = "drover_user_event"
    /// Channel on which a harness's group commit announces that it appended events (once per
    /// commit, whatever it held): `drover api` wakes its streams' poller on it.
    public static let eventsChannel = "drover_events"
    /// Channel on which a harness sends previews of a model call's output (`event_start`,
    /// `event_delta`) to the API's streams that asked for them; never stored.
    public static let previewsChannel = "drover_event_deltas"
    /// Channel on which `drover api` names a session that a stream with previews watches.
    public static let previewWatchChannel = "drover_delta_watch"

    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// Claims up to `max` runnable sessions for `owner` with a lease of `ttl` seconds. Each claim
    /// has appended `session.status_running` (included in the lease's `lastSeq`).
    public func claim(max: Int, owner: HarnessID, ttl: Double) async throws -> [Lease] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT session_id, lease_epoch, lease_expires_at, last_seq, agent_id, agent_version, environment_id, attempt
                  FROM drover.claim($1, $2, $3)
                """,
                [owner.rawValue, max, Self.milliseconds(ttl)]
            ).map { try Self.lease($0, at: 0, owner: owner) }
        }
    }

    /// One round trip and one commit for a batch: `finishing` (say, each finished session's last
    /// events and its release) and the claim of up to `max` more sessions, in one transaction.
    /// Every outcome is reported after that commit.
    public func cycle(finishing writes: [LeaseWrite], max: Int, owner: HarnessID, ttl: Double) async throws
        -> (outcomes: [Result<LeaseWriteOutcome, any Error>], leases: [Lease])
    {
        try await mappingErrors {
            let (ops, payloads) = WriteBatch.encode(writes)
            let rows = try await pool.query(
                """
                SELECT kind, ord, seq, id, created_at, expires_at, status, code, message,
                       session_id, lease_epoch, lease_expires_at, last_seq, agent_id, agent_version, environment_id, attempt
                  FROM drover.cycle($1::jsonb, $2::text[], $3, $4, $5)
                """, [ops, payloads, owner.rawValue, max, Self.milliseconds(ttl)])
            let written = rows.filter { $0[0] == "write" }
            let leases = try rows.filter { $0[0] == "lease" }.map { try Self.lease($0, at: 9, owner: owner) }
            return (try WriteBatch.decode(writes, written, offset: 1), leases)
        }
    }

    /// A lease from a claim row's columns (session_id … attempt) starting at `at`.
    static func lease(_ row: PostgresRow, at o: Int, owner: HarnessID) throws -> Lease {
        Lease(
            sessionID: SessionID(try row.decode(o)), owner: owner, epoch: try row.decode(o + 1),
            expiresAt: try row.decode(o + 2), lastSeq: try row.decode(o + 3), agentID: try row.decode(o + 4),
            agentVersion: try row.decode(o + 5), environmentID: try row.decode(o + 6), attempt: try row.decode(o + 7))
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
