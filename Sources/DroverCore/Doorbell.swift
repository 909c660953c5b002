import Foundation
import Synchronization

/// Wakes whoever waits when something happened, without saying what: waiters then read the
/// truth themselves (the log, the queue). A ring with nobody waiting is remembered once, so a
/// ring between a waiter's read and its wait is not lost.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Wakes every waiter (or the next one to wait).
    public func ring() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            if state.waiters.isEmpty {
                state.rung = true
                return []
            }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume(returning: true) }
    }

    /// Waits until a ring, `timeout` seconds, or the calling task's cancellation. Returns true
    /// when woken by a ring.
    public func wait(timeout: Double) async -> Bool {
        let id = state.withLock { state -> UInt64? in
            if state.rung {
                state.rung = false
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                state.withLock { $0.waiters[id] = continuation }
                if Task.isCancelled { state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: false) }
                Task {
                    try? await Task.sleep(for: .seconds(timeout))
                    state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: false)
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: false)
        }
    }
}
