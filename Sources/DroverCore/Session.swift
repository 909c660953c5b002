import Foundation

/// A session row: the queue state and the lease currently in force, if any.
public struct Session: Sendable, Equatable {
    public var id: SessionID
    public var agentID: String
    public var agentVersion: Int
    public var environmentID: String
    public var status: SessionStatus
    public var priority: Int
    public var createdAt: Date
    public var queuedAt: Date
    public var updatedAt: Date
    public var lastSeq: Int64
    public var leaseOwner: HarnessID?
    public var leaseEpoch: Int64
    public var leaseAcquiredAt: Date?
    public var leaseExpiresAt: Date?
    public var lastHeartbeatAt: Date?
    /// The agent version the session runs when `sessions.update(agent=…)` changed its tools or MCP
    /// servers (an internal copy); nil: the one it was created with.
    public var runAgent: (id: String, version: Int)? {
        get { runAgentID.flatMap { id in runAgentVersion.map { (id, $0) } } }
        set { (runAgentID, runAgentVersion) = (newValue?.id, newValue?.version) }
    }
    private var runAgentID: String?
    private var runAgentVersion: Int?

    public init(
        id: SessionID, agentID: String, agentVersion: Int, environmentID: String, status: SessionStatus,
        priority: Int, createdAt: Date, queuedAt: Date, updatedAt: Date, lastSeq: Int64,
        leaseOwner: HarnessID?, leaseEpoch: Int64, leaseAcquiredAt: Date?, leaseExpiresAt: Date?,
        lastHeartbeatAt: Date?
    ) {
        self.id = id
        self.agentID = agentID
        self.agentVersion = agentVersion
        self.environmentID = environmentID
        self.status = status
        self.priority = priority
        self.createdAt = createdAt
        self.queuedAt = queuedAt
        self.updatedAt = updatedAt
        self.lastSeq = lastSeq
        self.leaseOwner = leaseOwner
        self.leaseEpoch = leaseEpoch
        self.leaseAcquiredAt = leaseAcquiredAt
        self.leaseExpiresAt = leaseExpiresAt
        self.lastHeartbeatAt = lastHeartbeatAt
    }
}
