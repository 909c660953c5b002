import DroverCore
import DroverPostgres
import Foundation

/// Sends fenced writes as one `drover.write_batch` call: one statement, one transaction, a
/// result for each write in order. `GroupCommitter` and `SessionStore.appendAll` both go through it.
public enum WriteBatch {
    public static func send(_ writes: [LeaseWrite], on pool: ConnectionPool) async throws -> [Result<LeaseWriteOutcome, any Error>] {
        var ops: [String] = []
        var payloads: [String] = []
        for write in writes {
            let lease = write.lease
            var members = [
                ("session", JSONText.quote(lease.sessionID.rawValue)), ("owner", JSONText.quote(lease.owner.rawValue)),
                ("epoch", String(lease.epoch)),
            ]
            switch write {
            case .append(_, let type, let payload):
                payloads.append(payload)
                members += [("op", #""append""#), ("type", JSONText.quote(type.rawValue)), ("payload", String(payloads.count))]
            case .heartbeat(_, let ttl):
                members += [("op", #""heartbeat""#), ("ttl_ms", String(LeaseQueue.milliseconds(ttl)))]
            case .release(_, let status, let handledThrough):
                members += [("op", #""release""#), ("status", JSONText.quote(status.rawValue)),
                            ("handled_through", handledThrough.map { String($0) } ?? "null")]
            }
            ops.append(JSONText.object(members))
        }
        let rows = try await pool.query(
            """
            SELECT ord, seq, id, created_at, expires_at, status, code, message
              FROM drover.write_batch($1::jsonb, $2::text[])
            """, ["[" + ops.joined(separator: ",") + "]", payloads])
        guard rows.count == writes.count else {
            throw DroverError(.database, "write_batch answered \(rows.count) rows for \(writes.count) writes")
        }
        return try zip(writes, rows).map { write, row in
            if let code: String = try row.decodeIfPresent(6) {
                return .failure(DroverError(DroverError.Code(rawValue: code), try row.decodeIfPresent(7) ?? code))
            }
            switch write {
            case .append:
                return .success(.appended(AppendedEvent(seq: try row.decode(1), id: try row.decode(2), createdAt: try row.decode(3))))
            case .heartbeat:
                return .success(.extended(expiresAt: try row.decode(4)))
            case .release:
                return .success(.released(SessionStatus(rawValue: try row.decode(5)) ?? .idle))
            }
        }
    }

    /// One write through the single-write API (used when a whole batch was refused).
    static func sendAlone(_ write: LeaseWrite, on pool: ConnectionPool) async throws -> LeaseWriteOutcome {
        switch write {
        case .append(let lease, let type, let payload):
            return .appended(try await SessionStore(pool: pool).append(lease, type: type, payload: payload))
        case .heartbeat(let lease, let ttl):
            return .extended(expiresAt: try await LeaseQueue(pool: pool).heartbeat(lease, ttl: ttl).expiresAt)
        case .release(let lease, let status, let handledThrough):
            return .released(try await LeaseQueue(pool: pool).release(lease, to: status, handledThrough: handledThrough))
        }
    }
}

extension Result where Failure == any Error {
    /// The outcome of an async call, kept rather than thrown.
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
