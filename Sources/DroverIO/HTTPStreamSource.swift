/// The body of a streamed response (`HTTPServer`'s `HTTPAnswer.stream`): bytes the server takes
/// on its loop whenever the source says it has some, while the client keeps up.
public protocol HTTPStreamSource: AnyObject, Sendable {
    /// Registers what to call (from any thread) when there is something to take.
    func whenReady(_ wake: @escaping @Sendable () -> Void)
    /// What has arrived since the last take; never blocks.
    func take() -> HTTPStreamTake
    /// The connection ended (the client went, or the server drains): release what it holds.
    func cancel()
}

public enum HTTPStreamTake: Sendable {
    case nothing
    case bytes([UInt8])
    /// The last bytes: the connection closes once they are written.
    case ended([UInt8])
    /// The client read too slowly for the source's buffer: the connection is cut (`why` is logged).
    case overflowed(why: String)
}
