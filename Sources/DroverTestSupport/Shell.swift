import DroverIO
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A test rig's: runs a shell command to completion with `posix_spawn` and `waitpid` on a thread
/// of its own (Foundation's `Process.waitUntilExit` can miss a child's exit when called from
/// Swift's cooperative pool).
public enum Shell {
    public static func run(_ command: String) async throws -> Int32 {
        try await onOwnThread("drover.shell") { try runBlocking(command) }
    }

    static func runBlocking(_ command: String) throws -> Int32 {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
        defer { argv.forEach { free($0) } }
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        // WIFEXITED / WEXITSTATUS, which Swift cannot import as macros.
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
