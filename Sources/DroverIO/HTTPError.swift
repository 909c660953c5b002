import DroverCore

/// A transport failure: the request never produced a response (or it was cut off).
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var cancelled: Bool
    /// The address rule refused every address of the host (`egress_denied`, `unresolvable`).
    public var refusal: OutboundRefusal?
    public var description: String { message }

    public init(message: String, cancelled: Bool, refusal: OutboundRefusal? = nil) {
        self.message = message
        self.cancelled = cancelled
        self.refusal = refusal
    }
}
