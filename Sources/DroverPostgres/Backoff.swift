/// Exponential backoff with full jitter, for reconnecting after the server goes away.
public struct Backoff: Sendable {
    public var initial: Double
    public var maximum: Double
    public var multiplier: Double
    private var current: Double

    public init(initial: Double = 0.05, maximum: Double = 2.0, multiplier: Double = 2.0) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.current = initial
    }

    /// The next delay in seconds: uniformly random up to the current ceiling, which then grows.
    public mutating func next() -> Double {
        let ceiling = current
        current = min(current * multiplier, maximum)
        return Double.random(in: ceiling / 2...ceiling)
    }

    public mutating func reset() { current = initial }
}
