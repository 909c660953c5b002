import CDroverSys
import DroverIO
import Foundation

/// The seccomp filter sandboxed programs run under (the program itself is written in the C shim:
/// `drover_seccomp_program`). bubblewrap reads it from a descriptor at every start, so each
/// launch gets a fresh pipe holding it.
enum SeccompFilter {
    /// The program's bytes for this architecture; throws where the shim knows no architecture check.
    static func program() throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let size = buffer.withUnsafeMutableBytes { drover_seccomp_program($0.baseAddress, Int32($0.count)) }
        guard size > 0 else {
            throw IsolationError("no seccomp filter for this architecture; start with --no-seccomp to run without one")
        }
        return Array(buffer[0..<Int(size)])
    }

    /// A pipe's read end holding `program` (far below a pipe's capacity, so the write never blocks).
    static func descriptor(_ program: [UInt8]) throws -> Int32 {
        var fds: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { drover_pipe_cloexec(&fds) }
        defer { close(fds[1]) }
        let written = program.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        guard written == program.count else {
            close(fds[0])
            throw SystemError(errno: errno, call: "write seccomp program")
        }
        return fds[0]
    }
}
