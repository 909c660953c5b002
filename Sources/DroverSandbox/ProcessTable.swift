import Foundation
import Synchronization

/// Child processes of running tool calls, keyed `sandbox/call`, so that destroying a sandbox or
/// shutting down can kill them.
final class ProcessTable: Sendable {
    private let pids = Mutex([String: pid_t]())

    func set(_ key: String, _ pid: pid_t?) {
        pids.withLock { $0[key] = pid }
    }

    var count: Int { pids.withLock { $0.count } }

    /// Kills the whole process tree of every entry whose key starts with `prefix` (all with nil).
    func killAll(prefix: String?) {
        let victims = pids.withLock { table in table.filter { prefix == nil || $0.key.hasPrefix(prefix!) }.map(\.value) }
        for pid in victims {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
    }
}
