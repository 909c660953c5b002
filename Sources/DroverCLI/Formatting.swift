import DroverCore
import DroverStore
import Foundation

/// JSON renderings shared by commands; payloads pass through as stored.
public enum Render {
    public static func json(_ event: Event) -> String {
        JSONText.object([
            ("seq", String(event.seq)),
            ("type", JSONText.quote(event.type.rawValue)),
            ("payload", event.payload),
            ("id", JSONText.quote(event.id)),
            ("created_at", JSONText.quote(Output.timestamp(event.createdAt))),
            ("lease_epoch", event.leaseEpoch.map { String($0) } ?? "null"),
        ])
    }

    public static func json(_ session: Session) -> String {
        JSONText.object([
            ("id", JSONText.quote(session.id.rawValue)),
            ("status", JSONText.quote(session.status.rawValue)),
            ("agent_id", JSONText.quote(session.agentID)),
            ("agent_version", String(session.agentVersion)),
            ("environment_id", JSONText.quote(session.environmentID)),
            ("priority", String(session.priority)),
            ("last_seq", String(session.lastSeq)),
            ("lease_owner", session.leaseOwner.map { JSONText.quote($0.rawValue) } ?? "null"),
            ("lease_epoch", String(session.leaseEpoch)),
            ("lease_expires_at", optionalTime(session.leaseExpiresAt)),
            ("created_at", JSONText.quote(Output.timestamp(session.createdAt))),
            ("queued_at", JSONText.quote(Output.timestamp(session.queuedAt))),
            ("updated_at", JSONText.quote(Output.timestamp(session.updatedAt))),
        ])
    }

    public static func json(_ lease: LeaseView) -> String {
        JSONText.object([
            ("session", JSONText.quote(lease.sessionID.rawValue)),
            ("status", JSONText.quote(lease.status)),
            ("owner", JSONText.quote(lease.owner.rawValue)),
            ("epoch", String(lease.epoch)),
            ("acquired_at", optionalTime(lease.acquiredAt)),
            ("held_for_s", number(lease.heldFor)),
            ("heartbeat_age_s", number(lease.heartbeatAge)),
            ("expires_in_s", number(lease.expiresIn)),
            ("expired", lease.isExpired ? "true" : "false"),
        ])
    }

    public static func leaseTable(_ leases: [LeaseView], colour: Bool = false) -> String {
        Output.table(
            ["SESSION", "STATUS", "OWNER", "EPOCH", "HELD FOR", "HEARTBEAT AGE", "EXPIRES IN"],
            leases.map {
                [$0.sessionID.rawValue, $0.status, $0.owner.rawValue, String($0.epoch), Output.seconds($0.heldFor),
                 Output.seconds($0.heartbeatAge), $0.isExpired ? Terminal.red("EXPIRED", colour) : Output.seconds($0.expiresIn)]
            })
    }

    public static func number(_ value: Double?) -> String {
        value.map { String(format: "%.3f", $0) } ?? "null"
    }

    public static func eventLine(_ event: Event) -> String {
        let epoch = event.leaseEpoch.map { "epoch \($0)" } ?? "user"
        return String(format: "%6lld  ", event.seq) + "\(event.type.rawValue.padding(toLength: 26, withPad: " ", startingAt: 0)) \(epoch.padding(toLength: 9, withPad: " ", startingAt: 0))  \(event.payload)"
    }

    private static func optionalTime(_ date: Date?) -> String {
        date.map { JSONText.quote(Output.timestamp($0)) } ?? "null"
    }
}
