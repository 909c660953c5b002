import Foundation
import Synchronization

/// A bounded pool of connections.
///
/// At most `maxConnections` are open; callers beyond that wait in FIFO order. A connection that
/// broke is closed instead of returned, and the next acquire opens a new one, retrying with
/// backoff for up to `connectTimeout` seconds, so a server restart is ridden out. An idle
/// connection the server ended is replaced before use. A request that was in flight when the
/// connection broke fails with `connection_lost`; nothing is retried behind the caller's back,
/// since its outcome is unknown.
public final class ConnectionPool: Sendable {
    public let conninfo: String
    public let maxConnections: Int
    public let connectTimeout: Double

    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [CheckedContinuation<PostgresConnection?, Never>] = []
        var closed = false
    }

    private enum Grant {
        case connection(PostgresConnection)
        case openNew
        case wait
        case closed
    }

    private let state = Mutex(State())

    public init(conninfo: String, maxConnections: Int = 10, connectTimeout: Double = 30) {
        precondition(maxConnections > 0, "a pool needs at least one connection")
        self.conninfo = conninfo
        self.maxConnections = maxConnections
        self.connectTimeout = connectTimeout
    }

    /// Runs `body` with a connection, returning the connection to the pool afterwards.
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await acquire()
        do {
            let value = try await body(connection)
            release(connection)
            return value
        } catch {
            release(connection)
            throw error
        }
    }

    /// Runs `body` inside a transaction on one connection.
    public func transaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { try await $0.transaction(body) }
    }

    /// Shorthand for one statement on any connection.
    @discardableResult
    public func query(_ sql: String, _ params: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        try await withConnection { try await $0.query(sql, params) }
    }

    /// Closes idle connections and fails waiters; connections in use close when returned.
    public func close() {
        let (idle, waiters) = state.withLock { state -> ([PostgresConnection], [CheckedContinuation<PostgresConnection?, Never>]) in
            state.closed = true
            defer { state.idle = []; state.waiters = [] }
            state.open -= state.idle.count
            return (state.idle, state.waiters)
        }
        idle.forEach { $0.close() }
        waiters.forEach { $0.resume(returning: nil) }
    }

    /// Connections open now, idle and in use.
    public var openConnections: Int { state.withLock { $0.open } }

    func acquire() async throws -> PostgresConnection {
        let grant = state.withLock { state -> Grant in
            if state.closed { return .closed }
            if let connection = state.idle.popLast() { return .connection(connection) }
            if state.open < maxConnections {
                state.open += 1
                return .openNew
            }
            return .wait
        }
        switch grant {
        case .connection(let connection):
            // An idle connection the server ended (a restart, a terminated backend) was noticed
            // by the loop while it sat here; it is replaced, not handed out to fail.
            if connection.isBroken { return try await replace(connection) }
            return connection
        case .openNew:
            do {
                return try await openWithRetry()
            } catch {
                slotFreed()
                throw error
            }
        case .closed:
            throw PostgresError(.poolUnavailable, message: "the pool is closed")
        case .wait:
            let handed = await withCheckedContinuation { (continuation: CheckedContinuation<PostgresConnection?, Never>) in
                let enqueued = state.withLock { state -> Bool in
                    if state.closed { return false }
                    if let connection = state.idle.popLast() {
                        continuation.resume(returning: connection)
                        return true
                    }
                    state.waiters.append(continuation)
                    return true
                }
                if !enqueued { continuation.resume(returning: nil) }
            }
            guard let handed else { throw PostgresError(.poolUnavailable, message: "no connection could be opened") }
            if handed.isBroken { return try await replace(handed) }
            return handed
        }
    }

    func release(_ connection: PostgresConnection) {
        if connection.isBroken {
            connection.close()
            slotFreed()
            return
        }
        let waiter = state.withLock { state -> CheckedContinuation<PostgresConnection?, Never>? in
            if state.closed {
                state.open -= 1
                return nil
            }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(connection)
            return nil
        }
        if let waiter {
            waiter.resume(returning: connection)
        } else if state.withLock({ $0.closed }) {
            connection.close()
        }
    }

    /// A broken connection was handed to a waiter: it keeps the slot and opens a fresh one.
    private func replace(_ broken: PostgresConnection) async throws -> PostgresConnection {
        broken.close()
        do {
            return try await openWithRetry()
        } catch {
            slotFreed()
            throw error
        }
    }

    /// A slot became free without a connection to hand on: let the first waiter open one.
    private func slotFreed() {
        let waiter = state.withLock { state -> CheckedContinuation<PostgresConnection?, Never>? in
            state.open -= 1
            guard !state.waiters.isEmpty, !state.closed else { return nil }
            state.open += 1
            return state.waiters.removeFirst()
        }
        guard let waiter else { return }
        Task {
            do {
                waiter.resume(returning: try await openWithRetry())
            } catch {
                slotFreed()
                waiter.resume(returning: nil)
            }
        }
    }

    private func openWithRetry() async throws -> PostgresConnection {
        var backoff = Backoff()
        let deadline = Date().addingTimeInterval(connectTimeout)
        while true {
            do {
                return try await PostgresConnection.connect(conninfo)
            } catch let error as PostgresError {
                let delay = backoff.next()
                if Date().addingTimeInterval(delay) > deadline || state.withLock({ $0.closed }) { throw error }
                try await Task.sleep(for: .seconds(delay))
            }
        }
    }
}
