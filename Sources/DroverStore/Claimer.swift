import DroverCore
import DroverPostgres
import Foundation

/// Claims work in batches and, when there is none, sleeps until a `drover_runnable` notification
/// or the poll interval, whichever comes first. Notifications are only a hint; polling is what
/// guarantees progress (a notification can be lost while the listener reconnects).
public final class Claimer: Sendable {
    public let queue: LeaseQueue
    public let owner: HarnessID
    public let ttl: Double
    public let pollInterval: Double
    private let listener: PostgresListener?
    /// Whether `stop` stops the listener (false when it is shared with others).
    private let ownsListener: Bool

    /// A claimer with a listener of its own on `drover_runnable` (or none: poll only).
    public convenience init(queue: LeaseQueue, owner: HarnessID, ttl: Double, pollInterval: Double, listen: Bool = true) throws {
        let listener = listen ? try PostgresListener(conninfo: queue.pool.conninfo, channels: [LeaseQueue.runnableChannel]) : nil
        self.init(queue: queue, owner: owner, ttl: ttl, pollInterval: pollInterval, sharedListener: listener)
    }

    /// A claimer woken by a listener the caller owns (a harness listens on one connection for
    /// everything, to keep its connection budget small). Any notification wakes it.
    public init(queue: LeaseQueue, owner: HarnessID, ttl: Double, pollInterval: Double, sharedListener: PostgresListener?, owns: Bool = true) {
        self.queue = queue
        self.owner = owner
        self.ttl = ttl
        self.pollInterval = pollInterval
        self.listener = sharedListener
        self.ownsListener = owns
    }

    /// Whether the notification listener is connected (always false without one).
    public var isListening: Bool { listener?.isConnected ?? false }

    /// Returns the next non-empty batch of at most `max` leases; waits as long as it takes.
    /// Database errors are thrown so the caller can log them and call again.
    public func next(max: Int) async throws -> [Lease] {
        try await nextWithSendTime(max: max).leases
    }

    /// Like `next`, with the moment the successful claim was sent: a lease's holder must count its
    /// TTL from then, not from when it started waiting for work. No claim is sent while
    /// `mayClaim` says no (checked before every attempt, however the wait ended).
    public func nextWithSendTime(max: Int, mayClaim: @Sendable () -> Bool = { true }) async throws -> (leases: [Lease], sentAt: ContinuousClock.Instant) {
        while true {
            try Task.checkCancellation()
            guard mayClaim() else {
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            let sentAt = ContinuousClock.now
            let leases = try await queue.claim(max: max, owner: owner, ttl: ttl)
            if !leases.isEmpty { return (leases, sentAt) }
            if let listener {
                _ = await listener.wait(timeout: pollInterval)
            } else {
                try await Task.sleep(for: .seconds(pollInterval))
            }
        }
    }

    /// Stops the listener thread, if it is the claimer's own.
    public func stop() { if ownsListener { listener?.stop() } }
}
