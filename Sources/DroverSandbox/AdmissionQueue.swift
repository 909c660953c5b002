import Synchronization

/// Provisions waiting for room in a full pool, served first come, first served: a provision that
/// finds every sandbox running a call takes a ticket and parks; whenever room may have appeared
/// (a call ended, a sandbox ended, a provision gave its slot back) the first ticket is woken to
/// try again, and newcomers queue behind the tickets already waiting even when room is free, so
/// no one overtakes. A park also ends at the waiter's deadline or when everyone is released (the
/// pool shuts down).
final class AdmissionQueue: Sendable {
    private struct State {
        var tickets: [UInt64] = []
        var next: UInt64 = 0
        var parked: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Tickets woken while not parked: their next park returns at once.
        var woken: Set<UInt64> = []
    }

    private let state = Mutex(State())

    /// Provisions waiting now.
    var count: Int { state.withLock { $0.tickets.count } }

    var isEmpty: Bool { state.withLock { $0.tickets.isEmpty } }

    /// A new ticket, last in line.
    func enqueue() -> UInt64 {
        state.withLock { state in
            state.next += 1
            state.tickets.append(state.next)
            return state.next
        }
    }

    func isFirst(_ ticket: UInt64) -> Bool { state.withLock { $0.tickets.first == ticket } }

    /// Leaves the line (admitted, timed out or refused); the next in line gets its turn to try.
    func remove(_ ticket: UInt64) {
        let resumed = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.tickets.removeAll { $0 == ticket }
            state.woken.remove(ticket)
            return state.parked.removeValue(forKey: ticket)
        }
        resumed?.resume()
        wakeFirst()
    }

    /// Room may have appeared: the first in line tries again.
    func wakeFirst() {
        guard let first = state.withLock({ $0.tickets.first }) else { return }
        wake(first)
    }

    /// Wakes every waiter (the pool is shutting down: each will see it and give up).
    func wakeAll() {
        for ticket in state.withLock({ $0.tickets }) { wake(ticket) }
    }

    private func wake(_ ticket: UInt64) {
        let resumed = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let parked = state.parked.removeValue(forKey: ticket) { return parked }
            if state.tickets.contains(ticket) { state.woken.insert(ticket) }
            return nil
        }
        resumed?.resume()
    }

    /// Suspends until the ticket is woken, `timeout` passes, or the waiting task is cancelled (its
    /// client went away).
    func park(_ ticket: UInt64, timeout: Duration) async {
        let timer = Task { [weak self] in
            // Cancelled (the park ended first): no wake, or the next park would return at once.
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self?.wake(ticket)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.woken.remove(ticket) != nil { return true }
                    state.parked[ticket] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            wake(ticket)
        }
    }
}
