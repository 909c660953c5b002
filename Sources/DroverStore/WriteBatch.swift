import DroverCore
import DroverPostgres
import Foundation

/// Sends fenced writes as one `drover.write_batch` call: one statement, one transaction, a
/// result for each write in order. `GroupCommitter` and `SessionStore.appendAll` both go through it.
public enum WriteBatch {
    public static func send(_ writes: [LeaseWrite], on pool: ConnectionPool) async throws -> [Result<LeaseWriteOutcome, any Error>] {
        let (ops, payloads) = encode(writes)
        let rows = try await pool.query(
            """
            SELECT ord, seq, id, created_at, expires_at, status, code, message
              FROM drover.write_batch($1::jsonb, $2::text[])
            """, [ops, payloads])
        return try decode(writes, Array(rows))
    }

    /// The ops as `write_batch` takes them: a JSON array, and the payloads beside it (each is
    /// size-checked before it is parsed).
    static func encode(_ writes: [LeaseWrite]) -> (ops: String, payloads: [String]) {
        var ops: [String] = []
        var payloads: [String] = []
        for write in writes {
            let lease = write.lease
            var members = [
                ("session", JSONText.quote(lease.sessionID.rawValue)), ("owner", JSONText.quote(lease.owner.rawValue)),
                ("epoch", String(lease.epoch)),
            ]
            switch write {
            case .append(_, let type, let payload, let id):
                payloads.append(payload)
                members += [("op", #""append""#), ("type", JSONText.quote(type.rawValue)), ("payload", String(payloads.count))]
                if let id { members.append(("id", JSONText.quote(id.uuidString.lowercased()))) }
            case .heartbeat(_, let ttl):
                members += [("op", #""heartbeat""#), ("ttl_ms", String(LeaseQueue.milliseconds(ttl)))]
            case .release(_, let status, let handledThrough):
                members += [("op", #""release""#), ("status", JSONText.quote(status.rawValue)),
                            ("handled_through", handledThrough.map { String($0) } ?? "null")]
            }
            ops.append(JSONText.object(members))
        }
        return ("[" + ops.joined(separator: ",") + "]", payloads)
    }

    /// One outcome per write from `write_batch`'s rows (ord, seq, id, created_at, expires_at,
    /// status, code, message), starting at column `offset`.
    static func decode(_ writes: [LeaseWrite], _ rows: [PostgresRow], offset o: Int = 0) throws -> [Result<LeaseWriteOutcome, any Error>] {
        guard rows.count == writes.count else {
            throw DroverError(.database, "write_batch answered \(rows.count) rows for \(writes.count) writes")
        }
        return try zip(writes, rows).map { write, row in
            if let code: String = try row.decodeIfPresent(o + 6) {
                return .failure(DroverError(DroverError.Code(rawValue: code), try row.decodeIfPresent(o + 7) ?? code))
            }
            switch write {
            case .append:
                return .success(.appended(AppendedEvent(seq: try row.decode(o + 1), id: try row.decode(o + 2), createdAt: try row.decode(o + 3))))
            case .heartbeat:
                return .success(.extended(expiresAt: try row.decode(o + 4)))
            case .release:
                return .success(.released(SessionStatus(rawValue: try row.decode(o + 5)) ?? .idle))
            }
        }
    }
}
