import DroverCore
import DroverPostgres
import Foundation

/// Where an appended event landed.
public struct AppendedEvent: Sendable, Equatable {
    public var seq: Int64
    public var id: String
    public var createdAt: Date
}

/// The session log: agents, environments, sessions and their append-only events. Every method is
/// one call of the SQL function of the same name, so SQL users get the same semantics.
public struct SessionStore: Sendable {
    /// Session threads' ids begin so (their rows are sessions of their own, under a parent).
    public static let threadPrefix = "sthr_"
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// Registers an agent (version 1) and returns its id. `configJSON` holds run limits such as
    /// `max_turns`, `token_budget` and `context_budget_tokens`.
    public func createAgent(name: String, model: String, systemPrompt: String = "", toolsJSON: String = "[]", configJSON: String = "{}") async throws -> String {
        try await scalar("SELECT drover.create_agent($1, $2, $3, $4::jsonb, $5::jsonb)", [name, model, systemPrompt, toolsJSON, configJSON])
    }

    /// Registers an environment (sandbox configuration) and returns its id.
    public func createEnvironment(name: String, configJSON: String = "{}") async throws -> String {
        try await scalar("SELECT drover.create_environment($1, $2::jsonb)", [name, configJSON])
    }

    /// Creates a session pinned to the agent's latest version. With a first message (a
    /// `user.message` payload object) the session starts queued.
    public func createSession(agent: String, environment: String, firstMessage: String? = nil, priority: Int = 0) async throws -> SessionID {
        SessionID(try await scalar(
            "SELECT drover.create_session($1, $2, $3, $4)", [agent, environment, firstMessage, priority]))
    }

    /// Sends a user-side event. No lease is needed; an idle session becomes queued.
    @discardableResult
    public func send(_ session: SessionID, type: EventType, payload: String) async throws -> AppendedEvent {
        try await appended("SELECT seq, id, created_at FROM drover.send_event($1, $2, $3)", [session.rawValue, type.rawValue, payload])
    }

    /// Appends an event under `lease`; fails with `lease_lost` and writes nothing when the lease
    /// is stale or expired.
    @discardableResult
    public func append(_ lease: Lease, type: EventType, payload: String) async throws -> AppendedEvent {
        try await appended(
            "SELECT seq, id, created_at FROM drover.append_event($1, $2, $3, $4, $5)",
            [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, type.rawValue, payload])
    }

    /// A positional slice of the log, in seq order; see `drover.get_events`.
    public func events(
        _ session: SessionID, after: Int64? = nil, before: Int64? = nil, limit: Int = 100, tail: Int? = nil,
        types: [EventType]? = nil
    ) async throws -> [Event] {
        try await mappingErrors {
            let rows = try await pool.query(
                """
                SELECT session_id, seq, id, type, payload, created_at, lease_epoch
                  FROM drover.get_events($1, $2, $3, $4, $5, $6::text[])
                """,
                [session.rawValue, after, before, limit, tail, types?.map(\.rawValue)])
            return try rows.map(Self.decodeEvent)
        }
    }

    /// One session; `not_found` when there is none.
    public func session(_ id: SessionID) async throws -> Session {
        try await mappingErrors {
            let rows = try await pool.query("SELECT \(Self.sessionColumns) FROM drover.get_session($1)", [id.rawValue])
            return try Self.decodeSession(rows[0])
        }
    }

    /// Sessions, newest first, optionally of one status.
    public func sessions(status: SessionStatus? = nil, limit: Int = 100) async throws -> [Session] {
        try await mappingErrors {
            let rows = try await pool.query(
                """
                SELECT \(Self.sessionColumns) FROM drover.sessions
                 WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at DESC LIMIT $2
                """, [status?.rawValue, limit])
            return try rows.map(Self.decodeSession)
        }
    }

    // MARK: - Decoding

    static let sessionColumns = """
        id, agent_id, agent_version, environment_id, status, priority, created_at, queued_at, updated_at,
        last_seq, lease_owner, lease_epoch, lease_acquired_at, lease_expires_at, last_heartbeat_at, run_agent_id, run_agent_version
        """

    static func decodeSession(_ row: PostgresRow) throws -> Session {
        guard let status = SessionStatus(rawValue: try row.decode(4)) else {
            throw DroverError(.database, "unknown session status \(row[4] ?? "NULL")")
        }
        var session = Session(
            id: SessionID(try row.decode(0)), agentID: try row.decode(1), agentVersion: try row.decode(2),
            environmentID: try row.decode(3), status: status, priority: try row.decode(5),
            createdAt: try row.decode(6), queuedAt: try row.decode(7), updatedAt: try row.decode(8),
            lastSeq: try row.decode(9), leaseOwner: try row.decodeIfPresent(10, as: String.self).map(HarnessID.init),
            leaseEpoch: try row.decode(11), leaseAcquiredAt: try row.decodeIfPresent(12),
            leaseExpiresAt: try row.decodeIfPresent(13), lastHeartbeatAt: try row.decodeIfPresent(14))
        if let id = try row.decodeIfPresent(15, as: String.self), let version = try row.decodeIfPresent(16, as: Int.self) {
            session.runAgent = (id, version)
        }
        return session
    }

    static func decodeEvent(_ row: PostgresRow) throws -> Event {
        Event(
            sessionID: SessionID(try row.decode(0)), seq: try row.decode(1), id: try row.decode(2),
            type: EventType(try row.decode(3, as: String.self)), payload: try row.decode(4),
            createdAt: try row.decode(5), leaseEpoch: try row.decodeIfPresent(6))
    }

    private func scalar(_ sql: String, _ params: [(any PostgresEncodable)?]) async throws -> String {
        try await mappingErrors { try await pool.query(sql, params)[0].decode(0) }
    }

    private func appended(_ sql: String, _ params: [(any PostgresEncodable)?]) async throws -> AppendedEvent {
        try await mappingErrors {
            let row = try await pool.query(sql, params)[0]
            return AppendedEvent(seq: try row.decode(0), id: try row.decode(1), createdAt: try row.decode(2))
        }
    }
}
