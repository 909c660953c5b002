import DroverTestSupport
import Foundation
import Synchronization
import Testing

@testable import DroverSandbox

/// How the runner ends a call's process tree without ever signalling a number that is no longer
/// the call's.
@Suite struct ProcessRunnerTests {
    /// Issue #27, defect 8: the runner reaped the leader as soon as it exited, then, at the
    /// deadline, signalled its pid and group id, which by then another process may hold. Here the
    /// leader exits at once while a stray that left its group keeps the pipe open past the
    /// deadline. The leader must stay unreaped (its pid still the call's) until the runner is
    /// done signalling. Where this test may set the kernel's next pid (as root), it also makes the
    /// freed number another process's group, as a busy machine would, and that process must
    /// survive.
    @Test func aReapedLeadersNumberIsNeverSignalled() async throws {
        // The stray leaves the group (a session of its own) and writes without pause for 3 s;
        // the leader ends once the stray is out of its group.
        let script = """
            setsid timeout 3 yes &
            until [ "$(cut -d' ' -f6 /proc/$!/stat)" = "$!" ]; do sleep 0.01; done
            """
        let launch = Launch(argv: ["/bin/sh", "-c", script], ids: nil, limits: [])
        let started = try ProcessRunner.start(launch, environment: ["PATH=/usr/bin:/bin"])
        let pid = started.pid
        let done = Atomic(false)
        let collecting = Task {
            try await onOwnThread("collect") {
                defer { done.store(true, ordering: .sequentiallyConsistent) }
                return ProcessRunner.collect(started, limits: .init(timeout: 0.5, keep: 1 << 16, drainLimit: 1 << 40))
            }
        }

        var reapedWhileCollecting = false
        var victim: pid_t?
        while !done.load(ordering: .sequentiallyConsistent) {
            if !FileManager.default.fileExists(atPath: "/proc/\(pid)") {
                reapedWhileCollecting = true
                victim = Self.takeNumber(pid)
                break
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        let outcome = try await collecting.value
        var victimSurvived = true
        if let victim {
            try await Task.sleep(for: .milliseconds(300))
            var status: Int32 = 0
            victimSurvived = waitpid(victim, &status, WNOHANG) == 0
            kill(victim, SIGKILL)
            waitpid(victim, &status, 0)
        }
        #expect(!reapedWhileCollecting, "the leader's pid was freed while the runner could still signal it")
        #expect(victimSurvived, "the process that took the reaped leader's number was killed")
        #expect(outcome.timedOut, "the stray held the pipe past the deadline")
        #expect(outcome.output.starts(with: Array("y\ny\n".utf8)))
    }

    /// Starts a group leader with pid `number` if the kernel lets this process choose the next
    /// pid (root, and no other fork in between); nil otherwise.
    static func takeNumber(_ number: pid_t) -> pid_t? {
        for _ in 0..<20 {
            guard (try? "\(number - 1)".write(toFile: "/proc/sys/kernel/ns_last_pid", atomically: false, encoding: .utf8)) != nil
            else { return nil }
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            guard posix_spawn(&pid, "/bin/sleep", nil, &attributes, argv, nil) == 0 else { return nil }
            if pid == number { return pid }
            var status: Int32 = 0
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        return nil
    }
}
