/// A value held by reference, for keeping a function in a `Mutex`.
///
/// A function stored as a `Mutex`'s value itself is wrapped in two more reabstraction thunks at
/// every `withLock` (the generic inout access writes it back re-wrapped), so a function read at
/// every request ends up walking thousands of them. Held in a class, it is read, never rewritten.
public final class Boxed<Value: Sendable>: Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
