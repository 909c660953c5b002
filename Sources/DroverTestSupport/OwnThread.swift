import Foundation

/// A test rig's way to run blocking work (a blocking read, a child process's wait) without
/// blocking Swift's cooperative threads: a thread of its own, which resumes the caller when done.
/// Production code has none: its sockets are an event loop's, its blocking work a `BlockingPool`'s.
public func onOwnThread<T: Sendable>(_ name: String, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = name
        thread.start()
    }
}
