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
/// The child gets an empty signal mask and default dispositions (a daemon may block SIGTERM in
/// its own threads, and Foundation's `Process` would pass that on), its own process group, stdin
/// from /dev/null, and stdout and stderr on one pipe. At the deadline the whole tree is killed.
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

    static func run(_ argv: [String], environment: [String], limits: Limits, track: Track = { _ in }) throws -> ProcessOutcome {
        var pipeFDs: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { drover_pipe_cloexec(&pipeFDs) }
        let (readFD, writeFD) = (pipeFDs[0], pipeFDs[1])
        defer { close(readFD) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 1)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        close(writeFD)
        guard spawned == 0 else { throw SystemError(errno: spawned, call: "posix_spawn \(argv[0])") }
        track(pid)
        defer { track(nil) }
        return collect(pid: pid, readFD: readFD, limits: limits)
    }

    private static func collect(pid: pid_t, readFD: Int32, limits: Limits) -> ProcessOutcome {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(limits.timeout * 1e9)
        var output: [UInt8] = []
        var drained = 0
        var truncated = false
        var timedOut = false
        var outputLimitHit = false
        var killed = false
        var exitStatus: Int32?
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
            var poller = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
            let sliceMillis = killed ? 50 : Int32(min(50, max(1, (deadline - min(now, deadline)) / 1_000_000)))
            let ready = poll(&poller, 1, sliceMillis)
            if ready > 0 {
                let count = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
                if count == 0 { break }
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
            }
            // The main process may exit while a stray descendant still holds the pipe: reap it,
            // then give the rest of the tree no more than the remaining output already buffered.
            if exitStatus == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    exitStatus = status
                    kill(-pid, SIGKILL)
                }
            } else if ready == 0 {
                break
            }
        }
        if exitStatus == nil {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exitStatus = status
        }
        let status = exitStatus ?? 0
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ProcessOutcome(
            output: output, exitCode: exitCode, truncated: truncated, timedOut: timedOut, outputLimitHit: outputLimitHit)
    }
}
