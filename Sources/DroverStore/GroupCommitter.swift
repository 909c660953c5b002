import DroverCore
import DroverPostgres
import Foundation
import Synchronization

/// A fenced write under a lease.
public enum LeaseWrite: Sendable {
    /// `id`: the event's id (a UUID), when the writer chose it (a previewed agent.message).
    case append(Lease, EventType, payload: String, id: UUID? = nil)
    case heartbeat(Lease, ttl: Double)
    case release(Lease, to: SessionStatus, handledThrough: Int64?)

    var lease: Lease {
        switch self {
        case .append(let lease, _, _, _), .heartbeat(let lease, _), .release(let lease, _, _): lease
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

    /// Writes submitted together: never split across batches, kept in order.
    private struct Pending {
        var writes: [LeaseWrite]
        /// The unit asks that its commit notify `drover api`'s streams (whatever `notifyStreams` says).
        var notify = false
        var continuation: CheckedContinuation<[Result<LeaseWriteOutcome, any Error>], Never>
    }

    private struct State {
        var pending: [Pending] = []
        var inFlight = 0
    }

    private let state = Mutex(State())
    let notifyStreams: Bool
    private let notifier: PostCommitNotifier

    /// `notifyStreams`: each commit that appended events then sends one notification on
    /// `LeaseQueue.eventsChannel`, which wakes `drover api`'s streams at once instead of at their
    /// next 20 ms poll. It is sent after the commit (`PostCommitNotifier`): inside it, it made
    /// every harness's commits wait for each other's (0.3–0.45 ms of event-to-request latency at
    /// p50 when it was measured that way; docs/benchmarks.md).
    public init(pool: ConnectionPool, maxBatch: Int = 256, maxBatchBytes: Int = 4 << 20, maxInFlight: Int? = nil, notifyStreams: Bool = true) {
        self.pool = pool
        self.notifyStreams = notifyStreams
        notifier = PostCommitNotifier(pool: pool)
        self.maxBatch = maxBatch
        self.maxBatchBytes = maxBatchBytes
        self.maxInFlight = maxInFlight ?? pool.maxConnections
    }

    /// Sends `write` with whatever else is waiting and returns its own outcome.
    public func submit(_ write: LeaseWrite) async throws -> LeaseWriteOutcome {
        try await submitAll([write])[0].get()
    }

    /// Sends `writes` in one batch, in order (so in one transaction), each with its own outcome:
    /// e.g. a session's last event and its release, so the log never says idle while the lease is
    /// still held.
    ///
    /// `notify`: this commit notifies the API's streams even when `notifyStreams` is off: a
    /// self-hosted session's tool call, which a worker waits for on its stream.
    public func submitAll(_ writes: [LeaseWrite], notify: Bool = false) async -> [Result<LeaseWriteOutcome, any Error>] {
        guard !writes.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            let startFlusher = state.withLock { state -> Bool in
                state.pending.append(Pending(writes: writes, notify: notify, continuation: continuation))
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
                var writes = 0
                var count = 0
                for unit in state.pending {
                    for case .append(_, _, let payload, _) in unit.writes { bytes += payload.utf8.count }
                    writes += unit.writes.count
                    if count > 0 && (writes > maxBatch || bytes > maxBatchBytes) { break }
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
        var outcomes: [Result<LeaseWriteOutcome, any Error>]
        do {
            outcomes = try await WriteBatch.send(batch.flatMap(\.writes), on: pool)
        } catch let error as PostgresError where !error.isConnectionFailure {
            // The whole batch was rolled back (say, one payload was not JSON at all): send each
            // unit alone, in its own transaction, so that only the bad unit fails and a unit's
            // writes (a session's closing events and its release) still commit together or not at all.
            outcomes = []
            for unit in batch {
                do {
                    outcomes += try await WriteBatch.send(unit.writes, on: pool)
                } catch {
                    let failure = (error as? PostgresError).map(DroverError.init) ?? error
                    outcomes += unit.writes.map { _ in .failure(failure) }
                }
            }
        } catch {
            // The connection broke: the batch's outcome is unknown, and every caller is told so.
            let failure = (error as? PostgresError).map(DroverError.init) ?? error
            outcomes = batch.flatMap(\.writes).map { _ in .failure(failure) }
        }
        var offset = 0
        var appended = false
        for unit in batch {
            let own = outcomes[offset..<(offset + unit.writes.count)]
            if notifyStreams || unit.notify, own.contains(where: { if case .success(.appended) = $0 { true } else { false } }) { appended = true }
            offset += unit.writes.count
        }
        if appended { notifier.notify(LeaseQueue.eventsChannel) }
        offset = 0
        for unit in batch {
            unit.continuation.resume(returning: Array(outcomes[offset..<(offset + unit.writes.count)]))
            offset += unit.writes.count
        }
    }
}
