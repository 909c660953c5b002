import Foundation
import Synchronization

/// A fixed set of the daemon's own threads for blocking work (filesystem calls on sandbox
/// content, process waits), so Swift's cooperative threads never block and the number of threads
/// such work can take is bounded. Work beyond the threads waits its turn in order.
public final class BlockingPool: Sendable {
    public let name: String
    public let threads: Int

    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var busy = 0
        var started = 0
    }

    private let state = Mutex(State())
    private let signal = DispatchSemaphore(value: 0)

    /// Threads start as work arrives, up to `threads`, and stay.
    public init(name: String, threads: Int) {
        self.name = name
        self.threads = max(1, threads)
    }

    /// Runs `work` on one of the pool's threads and returns its result.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Work queued or running now.
    public var load: (busy: Int, queued: Int) { state.withLock { ($0.busy, $0.queue.count - $0.head) } }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        let startThread = state.withLock { state -> Bool in
            state.queue.append(job)
            let idle = state.started - state.busy - (state.queue.count - state.head - 1)
            guard idle <= 0, state.started < threads else { return false }
            state.started += 1
            return true
        }
        if startThread {
            let thread = Thread { [self] in worker() }
            thread.name = name
            thread.start()
        }
        signal.signal()
    }

    private func worker() {
        while true {
            signal.wait()
            let job = state.withLock { state -> (@Sendable () -> Void)? in
                guard state.head < state.queue.count else { return nil }
                let job = state.queue[state.head]
                state.head += 1
                if state.head > 1024 && state.head * 2 > state.queue.count {
                    state.queue.removeFirst(state.head)
                    state.head = 0
                }
                state.busy += 1
                return job
            }
            guard let job else { continue }
            job()
            state.withLock { $0.busy -= 1 }
        }
    }
}
