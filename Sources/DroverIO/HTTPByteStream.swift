import Synchronization

/// A streamed body written by a task (`write`, then `finish`), read by `HTTPServer` on its loop:
/// for answers produced over time, such as the scripted model's server-sent events. Unbounded:
/// its writers are Drover's own and write little.
public final class HTTPByteStream: HTTPStreamSource {
    private struct State {
        var buffer: [UInt8] = []
        var finished = false
        var cancelled = false
        var wake: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())

    public init() {}

    /// Appends bytes; false once the connection has ended (the writer can stop).
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        let (open, wake) = state.withLock { state -> (Bool, (@Sendable () -> Void)?) in
            guard !state.cancelled, !state.finished else { return (false, nil) }
            state.buffer += bytes
            return (true, state.wake)
        }
        wake?()
        return open
    }

    /// Ends the body: the connection closes once everything written has been sent.
    public func finish() {
        let wake = state.withLock { state -> (@Sendable () -> Void)? in
            state.finished = true
            return state.wake
        }
        wake?()
    }

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    public func whenReady(_ wake: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            state.wake = wake
            return !state.buffer.isEmpty || state.finished
        }
        if now { wake() }
    }

    public func take() -> HTTPStreamTake {
        state.withLock { state in
            defer { state.buffer = [] }
            if state.finished { return .ended(state.buffer) }
            return state.buffer.isEmpty ? .nothing : .bytes(state.buffer)
        }
    }

    public func cancel() {
        state.withLock { state in
            state.cancelled = true
            state.wake = nil
        }
    }
}
