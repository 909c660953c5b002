import Foundation
import Synchronization

/// A long-running part of a process: a daemon's server, queue poller, or the daemon itself.
///
/// `run(until:)` starts the service, serves until `stop` fires, drains, and returns. Nothing in a
/// service waits for signals itself: the `ServiceGroup` that runs it owns them, so several
/// services (a test's API and pool, say) run and stop in one process.
public protocol Service: Sendable {
    var name: String { get }
    /// Returns the service's exit status once it has stopped.
    func run(until stop: ShutdownTrigger) async throws -> Int32
}

/// A one-shot trigger that services wait on; carries the signal number (0 when asked in code).
public final class ShutdownTrigger: Sendable {
    private struct State {
        var reason: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// Fires the trigger (again is a no-op).
    public func fire(_ reason: Int32 = 0) {
        let waiters = state.withLock { state -> [CheckedContinuation<Int32, Never>] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume(returning: reason) }
    }

    public var hasFired: Bool { state.withLock { $0.reason != nil } }

    /// Waits until the trigger fires; returns its reason.
    public func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let reason = state.withLock { state -> Int32? in
                if let reason = state.reason { return reason }
                state.waiters.append(continuation)
                return nil
            }
            if let reason { continuation.resume(returning: reason) }
        }
    }
}

/// Runs services in order and stops them in reverse order, each within a deadline, on SIGTERM or
/// SIGINT (when it owns signals) or on `shutdown()`. The one lifecycle every daemon has: a
/// harness, a pool or the API is a group of one; tests put several in one group.
public final class ServiceGroup: Sendable {
    let services: [any Service]
    let handlesSignals: Bool
    /// Seconds each service gets to stop after its trigger fires (beyond its own grace).
    let deadline: Double
    let log: Log
    private let triggers: [ShutdownTrigger]
    private let outer = ShutdownTrigger()

    public init(_ services: [any Service], handlesSignals: Bool = true, deadline: Double = 60, log: Log) {
        self.services = services
        self.handlesSignals = handlesSignals
        self.deadline = deadline
        self.log = log
        triggers = services.map { _ in ShutdownTrigger() }
    }

    /// Asks every service to stop (as a signal would).
    public func shutdown() { outer.fire(0) }

    /// Runs until every service has stopped; returns the first non-zero exit status, else 0. A
    /// service that fails or ends on its own stops the rest too; the first failure is rethrown
    /// once all have stopped (a daemon's command prints it with its code).
    public func run() async throws -> Int32 {
        let signals = handlesSignals ? Task { [outer] in outer.fire(await TerminationSignal.wait()) } : nil
        defer { signals?.cancel() }
        final class Statuses: Sendable {
            let values: Mutex<[Int32]>
            let failure = Mutex<(any Error)?>(nil)
            init(_ count: Int) { values = Mutex([Int32](repeating: 0, count: count)) }
        }
        let statuses = Statuses(services.count)
        let running = services.enumerated().map { index, service in
            Task { [outer, log, triggers] in
                do {
                    let status = try await service.run(until: triggers[index])
                    statuses.values.withLock { $0[index] = status }
                } catch {
                    log.error("service failed", ("service", .string(service.name)), ("error", .string(String(reflecting: error))))
                    statuses.values.withLock { $0[index] = 1 }
                    statuses.failure.withLock { if $0 == nil { $0 = error } }
                }
                // One ending (on its own, or by failing) ends the process's other services too.
                outer.fire(0)
            }
        }
        let reason = await outer.wait()
        // Reverse order: what was started last (and may depend on what came before) stops first.
        for index in services.indices.reversed() {
            triggers[index].fire(reason)
            let done = Task { await running[index].value }
            let stopped = await withTaskGroup(of: Bool.self) { group in
                group.addTask { await done.value; return true }
                group.addTask { [deadline] in
                    try? await Task.sleep(for: .seconds(deadline))
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            if !stopped {
                log.error("service did not stop within its deadline", ("service", .string(services[index].name)), ("deadline_s", .number(deadline)))
                statuses.values.withLock { $0[index] = 1 }
            }
        }
        if let failure = statuses.failure.withLock({ $0 }) { throw failure }
        return statuses.values.withLock { $0.first { $0 != 0 } ?? 0 }
    }
}
