import Foundation
import Synchronization

/// Child processes of running tool calls, keyed `sandbox/call`, so that destroying a sandbox or
/// shutting down can kill them.
final class ProcessTable: Sendable {
    private let pids = Mutex([String: pid_t]())

    /// The key of a call's process; the trailing slash keeps call `a` from matching call `ab`.
    static func key(sandbox: String, call: String) -> String { "\(sandbox)/\(call)/" }

    func set(_ key: String, _ pid: pid_t?) {
        pids.withLock { $0[key] = pid }
    }

    var count: Int { pids.withLock { $0.count } }

    /// Kills the whole process tree of every entry whose key starts with `prefix` (all with nil);
    /// returns how many it killed.
    @discardableResult
    func killAll(prefix: String?) -> Int {
        // Signalled under the lock: a runner takes its entry out (under the lock) before it reaps
        // the pid, so every pid signalled here is still the call's, never a reused number.
        pids.withLock { table in
            let victims = table.filter { prefix == nil || $0.key.hasPrefix(prefix!) }.map(\.value)
            for pid in victims {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
            }
            return victims.count
        }
    }
}
