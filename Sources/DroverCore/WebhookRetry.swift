import Foundation

/// When a failed webhook delivery is tried again: after `base` seconds, doubling each attempt up
/// to `cap`, for as long as `giveUpAfter` seconds from when the event was queued (25 hours by
/// default: at least a day, so a receiver down over a weekend night or a deploy gets everything).
/// Past that the delivery is given up and its endpoint disabled, with the reason; enabling it
/// again resumes what is still pending. Pure: the deliverer asks, the tests walk it.
public struct WebhookRetry: Sendable, Equatable {
    public var base: Double
    public var cap: Double
    public var giveUpAfter: Double

    public init(base: Double = 5, cap: Double = 3600, giveUpAfter: Double = 25 * 3600) {
        self.base = base
        self.cap = cap
        self.giveUpAfter = giveUpAfter
    }

    /// After failed attempt number `attempts` (1 for the first) of an event queued at `queuedAt`:
    /// the time of the next attempt, or nil to give up.
    public func nextAttempt(afterFailure attempts: Int, queuedAt: Date, now: Date) -> Date? {
        guard now.timeIntervalSince(queuedAt) < giveUpAfter else { return nil }
        let delay = min(cap, base * pow(2, Double(min(max(attempts - 1, 0), 40))))
        return now.addingTimeInterval(delay)
    }
}
