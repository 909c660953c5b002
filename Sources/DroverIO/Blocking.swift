import Foundation

/// Runs blocking work (a child process, `accept`, `read`) on a thread of its own and resumes the
/// caller when it is done, so Swift's cooperative threads never block.
public func onOwnThread<T: Sendable>(_ name: String, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = name
        thread.start()
    }
}

/// A POSIX call failed; `errno` and the call's name.
public struct SystemError: Error, CustomStringConvertible {
    public var errno: Int32
    public var call: String
    public init(errno: Int32, call: String) {
        self.errno = errno
        self.call = call
    }
    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// Retries `EINTR`, throws `SystemError` for other failures (a negative result).
@discardableResult
public func retryingEINTR<T: BinaryInteger>(_ call: String, _ body: () -> T) throws -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        if errno == EINTR { continue }
        throw SystemError(errno: errno, call: call)
    }
}
