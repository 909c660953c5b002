import DroverCore
import DroverPostgres
import Foundation

/// A held lease as operators see it; ages are measured by the database's clock so that a
/// harness's clock skew does not distort them.
public struct LeaseView: Sendable, Equatable {
    public var sessionID: SessionID
    public var owner: HarnessID
    public var epoch: Int64
    public var acquiredAt: Date?
    /// Seconds since the last heartbeat.
    public var heartbeatAge: Double?
    /// Seconds until the lease expires; negative once it has.
    public var expiresIn: Double?

    public var isExpired: Bool { (expiresIn ?? 0) <= 0 }

    /// Every lease currently held (sessions in `running`), soonest to expire first.
    public static func all(in pool: ConnectionPool) async throws -> [LeaseView] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT id, lease_owner, lease_epoch, lease_acquired_at,
                       extract(epoch FROM clock_timestamp() - last_heartbeat_at)::float8,
                       extract(epoch FROM lease_expires_at - clock_timestamp())::float8
                  FROM drover.sessions WHERE status = 'running' ORDER BY lease_expires_at
                """
            ).map { row in
                LeaseView(
                    sessionID: SessionID(try row.decode(0)), owner: HarnessID(rawValue: try row.decode(1)),
                    epoch: try row.decode(2), acquiredAt: try row.decodeIfPresent(3),
                    heartbeatAge: try row.decodeIfPresent(4), expiresIn: try row.decodeIfPresent(5))
            }
        }
    }
}
