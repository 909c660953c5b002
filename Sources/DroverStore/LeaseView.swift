import DroverCore
import DroverPostgres
import Foundation

/// A held lease as operators see it (`drover.leases`); ages are measured by the database's clock
/// so that a harness's clock skew does not distort them.
public struct LeaseView: Sendable, Equatable {
    public var sessionID: SessionID
    public var status: String
    public var owner: HarnessID
    public var epoch: Int64
    public var acquiredAt: Date?
    public var heldFor: Double?
    /// Seconds since the last heartbeat.
    public var heartbeatAge: Double?
    /// Seconds until the lease expires; negative once it has.
    public var expiresIn: Double?
    public var isExpired: Bool

    /// Every lease currently held, soonest to expire first.
    public static func all(in pool: ConnectionPool) async throws -> [LeaseView] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT session_id, status, owner, epoch, acquired_at, held_for_s, heartbeat_age_s, expires_in_s, expired
                  FROM drover.leases ORDER BY expires_in_s, session_id
                """
            ).map { row in
                LeaseView(
                    sessionID: SessionID(try row.decode(0)), status: try row.decode(1), owner: HarnessID(rawValue: try row.decode(2)),
                    epoch: try row.decode(3), acquiredAt: try row.decodeIfPresent(4), heldFor: try row.decodeIfPresent(5),
                    heartbeatAge: try row.decodeIfPresent(6), expiresIn: try row.decodeIfPresent(7), isExpired: try row.decode(8))
            }
        }
    }
}
