/// The life of one lease as seen by its holder: events in, actions out, no I/O.
///
/// Time is a monotonic reading in seconds supplied by the caller. The local deadline is counted
/// from when a claim or heartbeat was *sent*, never from when its reply arrived, so the holder
/// always believes its lease ends no later than the database does and stops writing first.
public struct LeaseStateMachine: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// The lease is held; writes are allowed until `deadline`.
        case holding(deadline: Double, nextHeartbeat: Double, heartbeatSentAt: Double?)
        /// A release was sent; no more writes. Keeps the deadline in case the release fails.
        case releasing(deadline: Double)
        case released
        /// The lease is gone; the holder must stop and write nothing more.
        case lost(LossReason)
    }

    public enum LossReason: Sendable, Equatable {
        /// The database said `lease_lost` (taken over, expired, or epoch moved on).
        case fenced
        /// No heartbeat succeeded before the local deadline.
        case expiredLocally
    }

    /// What the caller must do after feeding an event in.
    public enum Action: Sendable, Equatable {
        case none
        case sendHeartbeat
        case sendRelease
        /// Cancel the session's work at once; write nothing more under this lease.
        case stopWork
    }

    public let ttl: Double
    public private(set) var state: State

    /// How long after a failed (transient) heartbeat to try again, as a fraction of the TTL.
    static let retryFraction = 0.1

    /// Starts holding a lease whose claim request was sent at `claimSentAt`.
    public init(claimSentAt: Double, ttl: Double) {
        precondition(ttl > 0, "lease TTL must be positive")
        self.ttl = ttl
        self.state = .holding(deadline: claimSentAt + ttl, nextHeartbeat: claimSentAt + ttl / 3, heartbeatSentAt: nil)
    }

    /// Whether a write may be sent at `now`.
    public func canWrite(at now: Double) -> Bool {
        if case .holding(let deadline, _, _) = state { return now < deadline }
        return false
    }

    /// Advances the clock: asks for a heartbeat when one is due, gives up at the deadline.
    public mutating func tick(now: Double) -> Action {
        guard case .holding(let deadline, let next, let sentAt) = state else { return .none }
        if now >= deadline {
            state = .lost(.expiredLocally)
            return .stopWork
        }
        if sentAt == nil && now >= next {
            state = .holding(deadline: deadline, nextHeartbeat: next, heartbeatSentAt: now)
            return .sendHeartbeat
        }
        return .none
    }

    /// The heartbeat sent at the recorded time was accepted by the database.
    public mutating func heartbeatSucceeded() {
        guard case .holding(_, _, let sentAt?) = state else { return }
        state = .holding(deadline: sentAt + ttl, nextHeartbeat: sentAt + ttl / 3, heartbeatSentAt: nil)
    }

    /// The heartbeat failed. `leaseLost` means fenced; otherwise it is retried soon while the
    /// deadline allows.
    public mutating func heartbeatFailed(leaseLost: Bool, now: Double) -> Action {
        guard case .holding(let deadline, _, _) = state else { return .none }
        if leaseLost {
            state = .lost(.fenced)
            return .stopWork
        }
        state = .holding(deadline: deadline, nextHeartbeat: now + ttl * Self.retryFraction, heartbeatSentAt: nil)
        return .none
    }

    /// A write under this lease was refused with `lease_lost`.
    public mutating func writeFenced() -> Action {
        switch state {
        case .holding, .releasing:
            state = .lost(.fenced)
            return .stopWork
        case .released, .lost:
            return .none
        }
    }

    /// The holder is done with the session (the release carries its last writes).
    public mutating func releaseRequested() -> Action {
        guard case .holding(let deadline, _, _) = state else { return .none }
        state = .releasing(deadline: deadline)
        return .sendRelease
    }

    /// The release reached the database (`leaseLost == false`) or was refused.
    public mutating func releaseCompleted(leaseLost: Bool) {
        guard case .releasing = state else { return }
        state = leaseLost ? .lost(.fenced) : .released
    }

    /// The release's outcome is unknown (the connection broke): the lease is held as before, until
    /// its deadline, and a heartbeat is due at once.
    public mutating func releaseFailed() {
        guard case .releasing(let deadline) = state else { return }
        state = .holding(deadline: deadline, nextHeartbeat: 0, heartbeatSentAt: nil)
    }
}
