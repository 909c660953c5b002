import DroverCore
import DroverPostgres
import Foundation

/// One broken invariant.
public struct Breach: Sendable, Equatable {
    public var check: String
    public var session: String
    public var seq: Int64?
    public var detail: String
}

/// What `drover verify` found.
public struct VerifyReport: Sendable {
    public var sessions: Int
    public var events: Int
    public var breaches: [Breach]
}

/// Checks the invariants Drover promises over every session in the database (see
/// docs/guarantees.md). Each check is one query, so it runs where the data is.
public struct Verifier: Sendable {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// The checks, by name: each query returns (session, seq or NULL, detail) per breach.
    static let checks: [(String, String)] = [
        ("contiguous_seq", """
            SELECT s.id, NULL::bigint, format('last_seq is %s but the log has %s events, highest seq %s',
                   s.last_seq, count(e.seq), coalesce(max(e.seq), 0))
              FROM drover.sessions s LEFT JOIN drover.events e ON e.session_id = s.id
             GROUP BY s.id, s.last_seq
            HAVING count(e.seq) <> s.last_seq OR coalesce(max(e.seq), 0) <> s.last_seq
            """),
        ("epoch_order", """
            SELECT session_id, seq, format('written under epoch %s after epoch %s had written', lease_epoch, previous)
              FROM (SELECT session_id, seq, lease_epoch,
                           max(lease_epoch) OVER (PARTITION BY session_id ORDER BY seq
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous
                      FROM drover.events) x
             WHERE lease_epoch < previous
            """),
        ("epoch_in_force", """
            SELECT e.session_id, e.seq, format('written under epoch %s at %s, after epoch %s was granted at %s',
                   e.lease_epoch, e.created_at, h.epoch, h.acquired_at)
              FROM drover.events e
              JOIN LATERAL (SELECT epoch, acquired_at FROM drover.lease_history h
                             WHERE h.session_id = e.session_id AND h.epoch > e.lease_epoch
                             ORDER BY h.epoch LIMIT 1) h ON h.acquired_at < e.created_at
             WHERE e.lease_epoch IS NOT NULL
            UNION ALL
            SELECT e.session_id, e.seq, format('written under epoch %s, which was never granted', e.lease_epoch)
              FROM drover.events e JOIN drover.sessions s ON s.id = e.session_id
             WHERE e.lease_epoch IS NOT NULL
               AND (e.lease_epoch > s.lease_epoch
                    OR (EXISTS (SELECT 1 FROM drover.lease_history h WHERE h.session_id = e.session_id)
                        AND NOT EXISTS (SELECT 1 FROM drover.lease_history h
                                         WHERE h.session_id = e.session_id AND h.epoch = e.lease_epoch)))
            """),
        // Memory written back by a session (migration 0022): under an epoch still in force, as
        // for events; and every memory's current version is one of its own, with its content.
        ("memory_epoch_in_force", """
            SELECT v.created_by->>'session_id', NULL::bigint,
                   format('memory version %s of %s written under epoch %s at %s, after epoch %s was granted at %s',
                          v.id, v.memory_id, v.lease_epoch, v.created_at, h.epoch, h.acquired_at)
              FROM drover.memory_versions v
              JOIN LATERAL (SELECT epoch, acquired_at FROM drover.lease_history h
                             WHERE h.session_id = v.created_by->>'session_id' AND h.epoch > v.lease_epoch
                             ORDER BY h.epoch LIMIT 1) h ON h.acquired_at < v.created_at
             WHERE v.lease_epoch IS NOT NULL
            UNION ALL
            SELECT v.created_by->>'session_id', NULL::bigint, format('memory version %s written under epoch %s, which was never granted', v.id, v.lease_epoch)
              FROM drover.memory_versions v
             WHERE v.lease_epoch IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM drover.lease_history h WHERE h.session_id = v.created_by->>'session_id' AND h.epoch = v.lease_epoch)
            """),
        ("memory_current_version", """
            SELECT NULL::text, NULL::bigint, format('memory %s names version %s, which is not a version of its content', m.id, m.version_id)
              FROM drover.memories m
             WHERE NOT EXISTS (SELECT 1 FROM drover.memory_versions v
                                WHERE v.id = m.version_id AND v.memory_id = m.id AND v.operation IN ('created', 'modified')
                                  AND v.content_sha256 = m.content_sha256)
            """),
        ("tool_result_per_use", """
            WITH uses AS (
                SELECT session_id, seq, payload->>'id' AS id FROM drover.events WHERE type = 'agent.tool_use'
            ), results AS (
                -- A self-hosted worker's user.tool_result names the call's event; the API stores
                -- the model's id beside it (drover_tool_use_id).
                SELECT session_id, coalesce(payload->>'drover_tool_use_id', payload->>'tool_use_id') AS id, count(*) AS n, min(seq) AS seq
                  FROM drover.events WHERE type IN ('agent.tool_result', 'user.tool_result') GROUP BY 1, 2
            )
            SELECT u.session_id, u.seq, format('tool use %s has %s results', u.id, coalesce(r.n, 0))
              FROM uses u LEFT JOIN results r ON r.session_id = u.session_id AND r.id = u.id
              JOIN drover.sessions s ON s.id = u.session_id
             WHERE coalesce(r.n, 0) > 1
                OR (coalesce(r.n, 0) = 0 AND NOT (
                    -- in flight: the session is still being worked on and no model call came after it
                    s.status IN ('running', 'queued')
                    AND NOT EXISTS (SELECT 1 FROM drover.events m WHERE m.session_id = u.session_id
                                       AND m.type = 'span.model_request_start' AND m.seq > u.seq)))
            UNION ALL
            SELECT r.session_id, r.seq, format('tool result for %s answers no tool use', r.id)
              FROM results r
             WHERE NOT EXISTS (SELECT 1 FROM uses u WHERE u.session_id = r.session_id AND u.id = r.id)
            """),
        // A message the user interrupted before any model request (a stopped workflow run's
        // thread, or a message and an interrupt sent together) was answered by the interrupt.
        ("user_event_seen", """
            SELECT e.session_id, e.seq, 'this user.message never reached a model request'
              FROM drover.events e JOIN drover.sessions s ON s.id = e.session_id
             WHERE e.type = 'user.message' AND s.status = 'idle'
               AND NOT EXISTS (SELECT 1 FROM drover.events m WHERE m.session_id = e.session_id
                                  AND m.type IN ('span.model_request_start', 'user.interrupt') AND m.seq > e.seq)
            """),
        ("no_stale_running", """
            SELECT id, NULL::bigint, format('running under epoch %s of %s, whose lease expired %s ago',
                   lease_epoch, lease_owner, date_trunc('second', clock_timestamp() - lease_expires_at))
              FROM drover.sessions
             WHERE status = 'running' AND lease_expires_at < clock_timestamp() - $1 * interval '1 millisecond'
            """),
        ("final_status", """
            SELECT s.id, st.seq, format('the session is %s but its last status event is %s', s.status, st.type)
              FROM drover.sessions s
              JOIN LATERAL (SELECT seq, type FROM drover.events e
                             WHERE e.session_id = s.id AND e.type LIKE 'session.status\\_%'
                             ORDER BY seq DESC LIMIT 1) st ON true
             WHERE (s.status = 'idle' AND st.type <> 'session.status_idle')
                OR (s.status = 'terminated' AND st.type = 'session.status_running')
            """),
    ]

    /// Runs every check. `rescueWindow`: how long past its expiry a lease may still be `running`
    /// before that counts as stuck (a harness rescues it on its next claim).
    public func run(rescueWindow: Double = 60) async throws -> VerifyReport {
        try await mappingErrors {
            let counts = try await pool.query("SELECT (SELECT count(*) FROM drover.sessions), (SELECT count(*) FROM drover.events)")[0]
            var breaches: [Breach] = []
            for (name, sql) in Self.checks {
                let params: [(any PostgresEncodable)?] = name == "no_stale_running" ? [LeaseQueue.milliseconds(rescueWindow)] : []
                for row in try await pool.query(sql, params) {
                    breaches.append(Breach(check: name, session: row[0] ?? "-", seq: try row.decodeIfPresent(1), detail: try row.decode(2)))
                }
            }
            return VerifyReport(sessions: try counts.decode(0), events: try counts.decode(1), breaches: breaches)
        }
    }
}
