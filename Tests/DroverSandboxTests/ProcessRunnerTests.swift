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
    /// done signalling, and the stray must not hold the runner. Where this test may set the
    /// kernel's next pid (as root), it also makes the freed number another process's group, as a
    /// busy machine would, and that process must survive.
    @Test func aReapedLeadersNumberIsNeverSignalled() async throws {
        // The stray leaves the group (a session of its own) and writes without pause for 5 s;
        // the leader ends once the stray is out of its group. Started and collected on a thread
        // of their own, back to back: in a loaded suite a task may wait seconds for a
        // cooperative thread, and the stray's time would run out before the collection began.
        let script = """
            setsid timeout 5 yes &
            until [ "$(cut -d' ' -f6 /proc/$!/stat)" = "$!" ]; do sleep 0.01; done
            """
        let launch = Launch(argv: ["/bin/sh", "-c", script], ids: nil, limits: [])
        let leader = Atomic<Int32>(0)
        let done = Atomic(false)
        let collecting = Task {
            try await onOwnThread("collect") {
                defer { done.store(true, ordering: .sequentiallyConsistent) }
                let started = try ProcessRunner.start(launch, environment: ["PATH=/usr/bin:/bin"])
                leader.store(started.pid, ordering: .sequentiallyConsistent)
                let begun = ContinuousClock.now
                _ = ProcessRunner.collect(started, limits: .init(timeout: 0.5, keep: 1 << 16, drainLimit: 1 << 40))
                return ContinuousClock.now - begun
            }
        }
        while leader.load(ordering: .sequentiallyConsistent) == 0 && !done.load(ordering: .sequentiallyConsistent) {
            try await Task.sleep(for: .milliseconds(1))
        }
        let pid = leader.load(ordering: .sequentiallyConsistent)

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
        let took = try await collecting.value
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
        // The runner ends at the deadline (or sooner, if the stray falls quiet for a moment on a
        // loaded machine), never when the stray, alive for 5 s, lets go of the pipe.
        #expect(took < .seconds(4), "the stray held the runner for \(took)")
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
