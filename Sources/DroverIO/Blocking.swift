import Foundation

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
