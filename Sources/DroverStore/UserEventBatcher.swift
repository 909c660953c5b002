import DroverCore
import DroverPostgres
import Foundation
import Synchronization

/// `events.send` group-committed: requests that arrive while a batch is in flight leave together
/// with the next one, in one statement and one commit, so a busy API replica pays one round trip
/// and one WAL flush for many sends (an idle one sends each at once, at a single request's latency).
///
/// Each request keeps its own answer. A request whose session is not the organisation's, is
/// archived or terminated appends nothing and gets no rows (its caller then asks which it was),
/// so a client sending to a finished session does not break up the others' batches. A request
/// the log refuses otherwise (a payload Postgres cannot take, a session terminated meanwhile)
/// fails the whole statement; the batch is then sent again one request at a time, each in its
/// own statement, so only that request fails, with the same error it would have had alone.
final class UserEventBatcher: Sendable {
    /// One `events.send`: its events in order.
    struct Request: Sendable {
        var org: String
        var session: String
        var types: [String]
        var payloads: [String]
    }

    /// A request's appended events, rendered, and the channels that wake its session's harness.
    typealias Appended = [(event: JSONValue, wake: String?)]

    private struct Pending {
        var request: Request
        var continuation: CheckedContinuation<Result<Appended, any Error>, Never>
    }

    private struct State {
        var pending: [Pending] = []
        var inFlight = 0
    }

    private let pool: ConnectionPool
    private let state = Mutex(State())
    private let maxBatch: Int
    private let maxInFlight: Int

    init(pool: ConnectionPool, maxBatch: Int = 64) {
        self.pool = pool
        self.maxBatch = maxBatch
        maxInFlight = max(1, pool.maxConnections / 2)
    }

    func send(_ request: Request) async throws -> Appended {
        try await withCheckedContinuation { continuation in
            let startFlusher = state.withLock { state -> Bool in
                state.pending.append(Pending(request: request, continuation: continuation))
                guard state.inFlight < maxInFlight else { return false }
                state.inFlight += 1
                return true
            }
            if startFlusher { Task { await self.flushUntilEmpty() } }
        }.get()
    }

    private func flushUntilEmpty() async {
        while true {
            let batch = state.withLock { state -> [Pending] in
                let count = min(maxBatch, state.pending.count)
                if count == 0 { state.inFlight -= 1 }
                defer { state.pending.removeFirst(count) }
                return Array(state.pending.prefix(count))
            }
            if batch.isEmpty { return }
            let results: [Result<Appended, any Error>]
            do {
                results = try await Self.append(batch.map(\.request), on: pool).map { .success($0) }
            } catch let error as PostgresError where !error.isConnectionFailure && batch.count > 1 {
                var each: [Result<Appended, any Error>] = []
                for pending in batch {
                    do {
                        each.append(.success(try await Self.append([pending.request], on: pool)[0]))
                    } catch {
                        each.append(.failure((error as? PostgresError).map(DroverError.init) ?? error))
                    }
                }
                results = each
            } catch {
                let failure = (error as? PostgresError).map(DroverError.init) ?? error
                results = batch.map { _ in .failure(failure) }
            }
            for (pending, result) in zip(batch, results) { pending.continuation.resume(returning: result) }
        }
    }

    /// Appends every request's events in one statement, in order (each row of the list, in turn,
    /// appends through the session's row: a nested loop driven by the list, never reordered).
    private static func append(_ requests: [Request], on pool: ConnectionPool) async throws -> [Appended] {
        var index: [String] = [], sessions: [String] = [], orgs: [String] = [], types: [String] = [], payloads: [String] = []
        for (number, request) in requests.enumerated() {
            for (type, payload) in zip(request.types, request.payloads) {
                index.append(String(number))
                sessions.append(request.session)
                orgs.append(request.org)
                types.append(type)
                payloads.append(payload)
            }
        }
        let rows = try await pool.query(
            """
            SELECT x.r, drover.api_event_json(sent.event)::text, sent.wake
              FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS x(r, session, org, type, payload, n)
             CROSS JOIN LATERAL (
                   SELECT a.event, a.wake
                     FROM drover.sessions s
                    CROSS JOIN LATERAL drover.append_user_event(s.id, x.type, x.payload) a
                    WHERE s.id = x.session AND s.org_id = x.org AND s.archived_at IS NULL AND s.status <> 'terminated') AS sent
             ORDER BY x.n
            """, [index, sessions, orgs, types, payloads])
        var appended = [Appended](repeating: [], count: requests.count)
        for row in rows {
            let number: Int = try row.decode(0)
            appended[number].append((event: try JSONValue.parse(try row.decode(1) as String), wake: row[2]))
        }
        return appended
    }
}
