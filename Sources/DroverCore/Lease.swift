import Foundation

/// A claim on one session: only `owner` at `epoch` may append to its log until `expiresAt`.
/// Every write names the epoch, and the database refuses writes from any older one (fencing).
public struct Lease: Sendable, Equatable, Hashable {
    public var sessionID: SessionID
    public var owner: HarnessID
    public var epoch: Int64
    /// The database's expiry time for the lease when it was granted or last extended.
    public var expiresAt: Date
    /// The last seq in the log when the lease was granted.
    public var lastSeq: Int64
    /// What the session runs, as the claim returned it (so a harness needs no second read).
    public var agentID: String?
    public var agentVersion: Int?
    public var environmentID: String?
    /// Claims of the session since it was last released cleanly, this one included: above 1, the
    /// harnesses before this one died (or stalled) holding it.
    public var attempt: Int

    public init(sessionID: SessionID, owner: HarnessID, epoch: Int64, expiresAt: Date, lastSeq: Int64,
                agentID: String? = nil, agentVersion: Int? = nil, environmentID: String? = nil, attempt: Int = 1) {
        self.sessionID = sessionID
        self.owner = owner
        self.epoch = epoch
        self.expiresAt = expiresAt
        self.lastSeq = lastSeq
        self.agentID = agentID
        self.agentVersion = agentVersion
        self.environmentID = environmentID
        self.attempt = attempt
    }
}
