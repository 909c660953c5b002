import Foundation

/// What a connection of an event loop has to write, and how much of it the kernel has taken: the
/// one place a loop writes to a non-blocking socket (`HTTPServer`, the pool's server). A write the
/// socket cannot take whole waits here for the loop's next writable event.
public struct OutboundBuffer: Sendable {
    private var bytes: [UInt8] = []
    private var sent = 0
    /// Whether the loop has been asked for writable events (`flush(to:on:watching:)`).
    private var watchingWritable = false

    public init() {}

    /// Nothing left to write.
    public var isEmpty: Bool { sent == bytes.count }
    /// Bytes queued and not yet taken by the kernel.
    public var pending: Int { bytes.count - sent }

    public mutating func append(_ more: [UInt8]) { bytes += more }

    public enum Flush: Sendable, Equatable {
        /// Everything was written.
        case done
        /// The socket is full: wait for it to be writable.
        case wouldBlock
        /// The connection failed (reset, closed).
        case failed
    }

    /// Writes what the socket takes now; `wrote` is called after each write that took bytes.
    public mutating func flush(to fd: Int32, wrote: () -> Void = {}) -> Flush {
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : .failed
            }
            sent += count
            wrote()
        }
        bytes.removeAll(keepingCapacity: bytes.count < 1 << 20)
        sent = 0
        return .done
    }

    /// `flush(to:)`, keeping the loop's interest in step: writable events exactly while bytes
    /// wait, on top of `watching` (what the connection always watches). For connections whose
    /// other interest never changes (the pool's server and its client); `HTTPServer`'s changes
    /// with the request's phase and is kept there.
    public mutating func flush(to fd: Int32, on loop: EventLoop, watching: EventLoop.Events) -> Flush {
        let result = flush(to: fd)
        guard result != .failed, (result == .wouldBlock) != watchingWritable else { return result }
        watchingWritable.toggle()
        loop.modify(fd, watchingWritable ? watching.union(.writable) : watching)
        return result
    }
}
