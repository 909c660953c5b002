import DroverIO
import CDroverSys
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended, with its merged output.
struct ProcessOutcome: Sendable {
    var output: [UInt8]
    /// Exit status, or 128 + signal number when killed.
    var exitCode: Int32
    /// Output past `keep` bytes was dropped.
    var truncated: Bool
    var timedOut: Bool
    /// Killed because it wrote more than `drainLimit` bytes.
    var outputLimitHit: Bool
}

/// Spawns a process tree and collects its output, on the calling (non-cooperative) thread.
///
/// The child is started by `drover_spawn`: an empty signal mask and default dispositions (a
/// daemon may block SIGTERM in its own threads, and Foundation's `Process` would pass that on),
/// its own process group, no inherited descriptors, stdin from /dev/null, stdout and stderr on one
/// pipe, rlimits and the sandbox's uid. At the deadline the whole tree is killed.
enum ProcessRunner {
    struct Limits: Sendable {
        var timeout: Double
        /// Bytes of output kept for the caller.
        var keep: Int
        /// Bytes read (and dropped) before the tree is killed as runaway.
        var drainLimit: Int
    }

    /// Registers the pid so that shutdown can kill it; called right after spawning.
    typealias Track = @Sendable (pid_t?) -> Void

    /// A started process: its pid and the read end of its output pipe.
    struct Started: Sendable {
        let pid: pid_t
        let readFD: Int32
        /// A networked call's listening socket at 127.0.0.1:3128 in its own network namespace;
        /// the pool's egress proxy accepts on it while the call runs, then closes it.
        var proxyListener: Int32? = nil
    }

    /// Spawns the process (on the thread whose control groups it should be born in) and
    /// registers it with `track`; `collect` then waits for it, on any thread.
    static func start(_ launch: Launch, environment: [String], track: Track = { _ in }) throws -> Started {
        var pipeFDs: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { drover_pipe_cloexec(&pipeFDs) }
        let (readFD, writeFD) = (pipeFDs[0], pipeFDs[1])
        var started = false
        defer { if !started { close(readFD) } }

        var options = drover_spawn_options()
        options.output_fd = writeFD
        options.pass_fd = -1
        options.network_channel = -1
        // A networked call's child sends back the listener it made in its new namespace.
        var channel: [Int32] = [-1, -1]
        if launch.networked {
            guard socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &channel) == 0 else {
                throw SystemError(errno: errno, call: "socketpair")
            }
            options.network_channel = channel[1]
            options.network_port = Int32(SandboxNetwork.proxyPort)
        }
        defer { channel.filter { $0 >= 0 }.forEach { close($0) } }
        options.cgroup_fds = (-1, -1)
        let seccompFD = try launch.seccomp.map { try SeccompFilter.descriptor($0) }
        defer { if let seccompFD { close(seccompFD) } }
        if let seccompFD { options.pass_fd = seccompFD }
        // A process started by the sandbox's spawner thread is born in its groups; others join.
        if let cgroup = launch.cgroup, cgroup.spawner == nil {
            let fds = cgroup.procsFDs
            options.cgroup_fds = (fds.first ?? -1, fds.count > 1 ? fds[1] : -1)
        }
        if let ids = launch.ids {
            options.set_ids = 1
            options.uid = ids.uid
            options.gid = ids.gid
        }
        options.limit_count = Int32(min(8, launch.limits.count))
        withUnsafeMutableBytes(of: &options.limit_resources) { resources in
            withUnsafeMutableBytes(of: &options.limit_values) { values in
                for (index, limit) in launch.limits.prefix(8).enumerated() {
                    resources.storeBytes(of: limit.0, toByteOffset: index * 4, as: Int32.self)
                    values.storeBytes(of: limit.1, toByteOffset: index * 8, as: UInt64.self)
                }
            }
        }
        let narrow = launch.narrow.map { (strdup($0.parent), strdup($0.home)) }
        defer {
            free(narrow?.0)
            free(narrow?.1)
        }
        options.narrow_parent = UnsafePointer(narrow?.0)
        options.narrow_home = UnsafePointer(narrow?.1)
        let cArgs = launch.argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var error: Int32 = 0
        let pid = drover_spawn(launch.argv[0], cArgs, cEnv, &options, &error)
        close(writeFD)
        guard pid > 0 else { throw SystemError(errno: error, call: "spawn \(launch.argv[0])") }
        track(pid)
        started = true
        guard launch.networked else { return Started(pid: pid, readFD: readFD) }
        // The child sent it before exec, and drover_spawn returns after exec: it is there.
        let listener = drover_receive_fd(channel[0])
        return Started(pid: pid, readFD: readFD, proxyListener: listener >= 0 ? listener : nil)
    }

    /// Collects a started process's output until it ends or the deadline kills its tree; then
    /// unregisters it with `track`, reaps it and closes the pipe.
    ///
    /// The leader is reaped last, after every signal this runner or `track`'s table may send: a
    /// pid is free for reuse the moment it is reaped, and while any member of its group lives, or
    /// the leader is an unreaped zombie, neither the pid nor the group id can name another process
    /// (issue #27, defect 8). The exit is learnt from a pidfd, which turns readable at the exit
    /// without reaping.
    static func collect(_ started: Started, limits: Limits, track: Track = { _ in }) -> ProcessOutcome {
        let (pid, readFD) = (started.pid, started.readFD)
        let exitFD = drover_pidfd_open(pid)
        defer {
            close(readFD)
            if exitFD >= 0 { close(exitFD) }
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(limits.timeout * 1e9)
        var output: [UInt8] = []
        var drained = 0
        var truncated = false
        var timedOut = false
        var outputLimitHit = false
        var killed = false
        var outputOpen = true
        // Without a pidfd (a kernel before 5.3) the exit is seen as the pipe's end, as it was.
        var exited = false
        var buffer = [UInt8](repeating: 0, count: 65_536)

        func killTree() {
            guard !killed else { return }
            killed = true
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }

        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline && !killed {
                timedOut = true
                killTree()
            }
            // An ended leader and a closed pipe leave nothing to wait for; an ended (or, without a
            // pidfd, killed) leader past the deadline by a quarter second, only a stray that left
            // the group and still holds the pipe.
            if exited && !outputOpen { break }
            if (exited || (killed && exitFD < 0)) && now >= deadline + 250_000_000 { break }
            if !outputOpen && exitFD < 0 { break }
            var pollers = [
                pollfd(fd: outputOpen ? readFD : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: exited ? -1 : exitFD, events: Int16(POLLIN), revents: 0),
            ]
            let sliceMillis = killed ? 50 : Int32(min(50, max(1, (deadline - min(now, deadline)) / 1_000_000)))
            let ready = poll(&pollers, 2, sliceMillis)
            if pollers[1].revents != 0 {
                exited = true
                // Whatever of the tree outlives its leader is killed now, while the group's id is
                // still held by the unreaped leader.
                kill(-pid, SIGKILL)
            }
            if pollers[0].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
                if count == 0 { outputOpen = false }
                if count > 0 {
                    drained += count
                    let room = max(0, limits.keep - output.count)
                    output.append(contentsOf: buffer[0..<min(room, count)])
                    if count > room { truncated = true }
                    if drained > limits.drainLimit && !killed {
                        outputLimitHit = true
                        killTree()
                    }
                }
            } else if ready == 0 && exited {
                // The leader ended and a stray that holds the pipe has been quiet for a slice.
                break
            }
        }
        // Out of the table (so shutdown cannot signal it) before the pid is freed by the reap.
        track(nil)
        var exitStatus: Int32 = 0
        while waitpid(pid, &exitStatus, 0) < 0 && errno == EINTR {}
        let status = exitStatus
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ProcessOutcome(
            output: output, exitCode: exitCode, truncated: truncated, timedOut: timedOut, outputLimitHit: outputLimitHit)
    }
}
