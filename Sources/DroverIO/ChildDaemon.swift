import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A daemon run as a child process (by tests, benchmarks and the demo). Its standard output and
/// error (JSON log lines) go to a file that can be read; it is killed if dropped while running,
/// and its log file is removed then (a test suite's runs had left thousands in the temporary
/// folder).
/// `@unchecked Sendable`: the only mutable state, the reaped status, is set by `waitpid`, which
/// succeeds once.
public final class ChildDaemon: @unchecked Sendable {
    public let pid: pid_t
    public let logPath: String
    private var reaped: Int32?

    /// Starts `binary ARGS` with `environment` added to this process's environment.
    public init(binary: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        logPath = NSTemporaryDirectory() + "drover-daemon-\(UInt64.random(in: 0...UInt64.max)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_APPEND, 0)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_APPEND, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, binary, &actions, &attributes, argv, envp)
        guard result == 0 else { throw DroverError(.invalidArgument, "cannot start \(binary): \(String(cString: strerror(result)))") }
        self.pid = pid
    }

    deinit {
        if reaped == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        unlink(logPath)
    }

    /// The log so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits for a JSON log line whose `msg` is `message` (and that `matching` accepts); returns it parsed.
    public func waitForLog(_ message: String, timeout: Double = 20, matching: (JSONValue) -> Bool = { _ in true }) async throws -> JSONValue {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            for line in log.split(separator: "\n") {
                if let value = try? JSONValue.parse(String(line)), value["msg"]?.stringValue == message, matching(value) { return value }
            }
            if let status = tryReap() {
                throw DroverError(.invalidArgument, "the daemon exited with \(status) before logging \(message):\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DroverError(.invalidArgument, "no \(message) log line within \(timeout) s:\n\(log)")
    }

    /// Signals the process unless it has been reaped (its pid may since be another process's).
    public func signal(_ number: Int32) {
        guard reaped == nil else { return }
        kill(pid, number)
    }

    /// Waits for the process to exit; its exit status, or 128 + signal. Nil on timeout.
    public func wait(timeout: Double) async -> Int32? {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if let status = tryReap() { return status }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Whether the process is still running.
    public var isRunning: Bool { tryReap() == nil }

    private func tryReap() -> Int32? {
        if let reaped { return reaped }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        reaped = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return reaped
    }
}
