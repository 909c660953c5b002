import CDroverSys
import DroverCore
import DroverIO
import Foundation
import Synchronization

/// A thread of the daemon's that lives in one sandbox's cgroup v1 groups and starts that
/// sandbox's processes, so they are born in the groups instead of moving into them.
///
/// Moving a process into a v1 group right before bubblewrap loads its seccomp filter cost about
/// 7 ms a call here (measured: `drover bench sandbox`, layer costs); a child forked by a thread
/// already in the group inherits it for free. v1 lets single threads join a group (`tasks`); a
/// thread's own memory is still charged to the daemon (v1 charges a process's memory to its
/// leader's group), and it takes one of the sandbox's `processes`. v2 has no per-thread groups
/// for these controllers: there each child joins at spawn.
final class SandboxSpawner: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts the thread and waits until it is in `folders` (each a v1 group); `home` are the
    /// groups it returns to before it ends, so that the sandbox's can be removed.
    init(joining folders: [String], home: [String]) throws {
        final class Failure: Sendable { let message = Mutex<String?>(nil) }
        let joined = DispatchSemaphore(value: 0)
        let failure = Failure()
        let thread = Thread { [self] in
            func move(to targets: [String]) throws {
                for folder in targets { try SandboxCgroups.write(String(drover_gettid()), to: folder + "/tasks") }
            }
            do {
                try move(to: folders)
            } catch {
                failure.message.withLock { $0 = "\(error)" }
                joined.signal()
                return
            }
            joined.signal()
            while true {
                wake.wait()
                let next = state.withLock { state -> (@Sendable () -> Void)? in state.jobs.isEmpty ? nil : state.jobs.removeFirst() }
                if let next {
                    next()
                } else if state.withLock({ $0.stopping }) {
                    try? move(to: home)
                    stopped.signal()
                    return
                }
            }
        }
        thread.name = "drover.pool.spawner"
        thread.start()
        joined.wait()
        if let message = failure.message.withLock({ $0 }) { throw IsolationError("cannot move a spawner thread into the sandbox's groups: \(message)") }
    }

    /// Runs `work` (a spawn) on the spawner's thread.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = state.withLock { state -> Bool in
                guard !state.stopping else { return false }
                state.jobs.append { continuation.resume(with: Result { try work() }) }
                return true
            }
            guard accepted else {
                continuation.resume(throwing: PoolProtocol.Failure(.sandboxGone, "the sandbox is being removed"))
                return
            }
            wake.signal()
        }
    }

    /// Runs what is queued, leaves the groups and ends the thread; returns when it has left.
    func stop() {
        state.withLock { $0.stopping = true }
        wake.signal()
        stopped.wait()
    }
}
