import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished `drover` process printed and how it exited.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs the real `drover` executable, as a user would, with `DATABASE_URL` pointed at `database`.
///
/// Spawned with `posix_spawn`, output to files, reaped with `waitpid`: Foundation's `Process` and
/// `Pipe` are not used, because their descriptors can be closed twice, and in a test process full
/// of sockets a second close hits somebody else's connection.
public enum DroverProcess {
    public static func run(_ arguments: [String], database: String?) async throws -> ProcessResult {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runBlocking(arguments, database: database) })
            }
        }
    }

    /// Runs another program (a real third-party client, say) to its end, with `extra` added to
    /// this process's environment.
    public static func run(program: String, _ arguments: [String], environment extra: [String: String]) async throws -> ProcessResult {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runBlocking(binary: program, arguments, environment: extra) })
            }
        }
    }

    static func runBlocking(_ arguments: [String], database: String?) throws -> ProcessResult {
        var extra = ["DROVER_MIGRATIONS_DIR": TestDatabase.migrationsDirectory.path]
        extra["DATABASE_URL"] = database
        return try runBlocking(binary: TestDatabase.droverBinary.path, arguments, environment: extra)
    }

    static func runBlocking(binary: String, _ arguments: [String], environment extra: [String: String]) throws -> ProcessResult {
        let base = NSTemporaryDirectory() + "drover-cli-\(UInt64.random(in: 0...UInt64.max))"
        let (outPath, errPath) = (base + ".out", base + ".err")
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        var environment = ProcessInfo.processInfo.environment
        if extra["DATABASE_URL"] == nil { environment["DATABASE_URL"] = nil }
        environment.merge(extra) { _, new in new }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, binary, &actions, nil, argv, envp)
        guard spawned == 0 else { throw DroverError(.invalidArgument, "cannot start \(binary): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ProcessResult(
            status: exit, stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
}
