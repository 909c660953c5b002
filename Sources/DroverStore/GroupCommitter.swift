import DroverCore
import DroverPostgres
import Foundation
import Synchronization

/// A fenced write under a lease.
public enum LeaseWrite: Sendable {
    case append(Lease, EventType, payload: String)
    case heartbeat(Lease, ttl: Double)
    case release(Lease, to: SessionStatus, handledThrough: Int64?)

    var lease: Lease {
        switch self {
        case .append(let lease, _, _), .heartbeat(let lease, _), .release(let lease, _, _): lease
        }
    }
}

/// What a fenced write did.
public enum LeaseWriteOutcome: Sendable, Equatable {
    case appended(AppendedEvent)
    case extended(expiresAt: Date)
    case released(SessionStatus)
}

/// Group commit for fenced writes: writes submitted by many sessions at once are sent together as
/// one `drover.write_batch` call, one transaction and one WAL flush, instead of one commit each.
///
/// When the database is idle a write goes out at once (latency of a single call); while batches
/// are in flight, new writes queue and leave together with the next one, so throughput grows with
/// load. Each write keeps its own fencing and its own result: one refused write does not disturb
/// the others. Writes of one session stay in order because its caller awaits each before the next.
public final class GroupCommitter: Sendable {
    public let pool: ConnectionPool
    public let maxBatch: Int
    public let maxBatchBytes: Int
    public let maxInFlight: Int

    private struct Pending {
        var write: LeaseWrite
        var continuation: CheckedContinuation<LeaseWriteOutcome, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var inFlight = 0
    }

    private let state = Mutex(State())

    public init(pool: ConnectionPool, maxBatch: Int = 256, maxBatchBytes: Int = 4 << 20, maxInFlight: Int? = nil) {
        self.pool = pool
        self.maxBatch = maxBatch
        self.maxBatchBytes = maxBatchBytes
        self.maxInFlight = maxInFlight ?? pool.maxConnections
    }

    /// Sends `write` with whatever else is waiting and returns its own outcome.
    public func submit(_ write: LeaseWrite) async throws -> LeaseWriteOutcome {
        try await withCheckedThrowingContinuation { continuation in
            let startFlusher = state.withLock { state -> Bool in
                state.pending.append(Pending(write: write, continuation: continuation))
                guard state.inFlight < maxInFlight else { return false }
                state.inFlight += 1
                return true
            }
            if startFlusher { Task { await self.flushUntilEmpty() } }
        }
    }

    @discardableResult
    public func append(_ lease: Lease, type: EventType, payload: String) async throws -> AppendedEvent {
        guard case .appended(let event) = try await submit(.append(lease, type, payload: payload)) else { fatalError("append outcome") }
        return event
    }

    public func heartbeat(_ lease: Lease, ttl: Double) async throws -> Lease {
        guard case .extended(let expiresAt) = try await submit(.heartbeat(lease, ttl: ttl)) else { fatalError("heartbeat outcome") }
        var extended = lease
        extended.expiresAt = expiresAt
        return extended
    }

    @discardableResult
    public func release(_ lease: Lease, to status: SessionStatus = .idle, handledThrough: Int64? = nil) async throws -> SessionStatus {
        guard case .released(let status) = try await submit(.release(lease, to: status, handledThrough: handledThrough)) else {
            fatalError("release outcome")
        }
        return status
    }

    private func flushUntilEmpty() async {
        while true {
            let batch = state.withLock { state -> [Pending] in
                var bytes = 0
                var count = 0
                for item in state.pending {
                    if case .append(_, _, let payload) = item.write { bytes += payload.utf8.count }
                    if count > 0 && (count >= maxBatch || bytes > maxBatchBytes) { break }
                    count += 1
                }
                defer { state.pending.removeFirst(count) }
                if count == 0 { state.inFlight -= 1 }
                return Array(state.pending.prefix(count))
            }
            if batch.isEmpty { return }
            await flush(batch)
        }
    }

    private func flush(_ batch: [Pending]) async {
        do {
            let outcomes = try await writeBatch(batch.map(\.write))
            for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(with: outcome) }
        } catch let error as PostgresError where error.code != .connectionLost && error.code != .connectionFailed
            && error.code != .poolUnavailable
        {
            // The whole batch was rolled back (say, one payload was not JSON at all): write each
            // one alone so that only the bad one fails.
            for item in batch {
                item.continuation.resume(with: await Result(catching: { try await writeAlone(item.write) }))
            }
        } catch {
            // The connection broke: the batch's outcome is unknown, and every caller is told so.
            let failure = (error as? PostgresError).map(DroverError.init) ?? error
            for item in batch { item.continuation.resume(throwing: failure) }
        }
    }

    private func writeBatch(_ writes: [LeaseWrite]) async throws -> [Result<LeaseWriteOutcome, any Error>] {
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

    private func writeAlone(_ write: LeaseWrite) async throws -> LeaseWriteOutcome {
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

private extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
