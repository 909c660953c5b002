-- session.status_rescheduled (issue #23, item 5): a session claimed because its holder stopped
-- without giving it back (its lease expired, or was cut when the harness was found dead) says so
-- in its log, right before the session.status_running of the claim that resumes it, as Managed
-- Agents' "recovering from an error state and rescheduled" does. A session handed off or queued
-- by a user event is not rescheduled. As 0008's claim otherwise.
CREATE OR REPLACE FUNCTION drover.claim(p_owner text, p_max integer, p_ttl_ms integer)
RETURNS TABLE (session_id text, lease_epoch bigint, lease_expires_at timestamptz, last_seq bigint,
               agent_id text, agent_version integer, environment_id text, attempt integer)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_owner, '') = '' OR coalesce(p_max, 0) NOT BETWEEN 1 AND 1000 OR coalesce(p_ttl_ms, 0) < 100 THEN
        PERFORM drover.raise_coded('invalid_argument', 'claim needs an owner, 1..1000 sessions and a TTL of at least 100 ms');
    END IF;
    RETURN QUERY
    WITH expired AS (
        SELECT s.id, s.priority, s.queued_at, coalesce(s.lease_end_cause, 'expired') AS cause FROM drover.sessions s
         WHERE s.status = 'running' AND s.lease_expires_at < now()
         ORDER BY s.lease_expires_at
         LIMIT p_max
         FOR UPDATE SKIP LOCKED
    ), queued AS (
        SELECT s.id, s.priority, s.queued_at, 'queued'::text AS cause FROM drover.sessions s
         WHERE s.status = 'queued'
         ORDER BY s.priority DESC, s.queued_at
         LIMIT p_max
         FOR UPDATE SKIP LOCKED
    ), picked AS (
        SELECT c.id, c.cause FROM (SELECT * FROM expired UNION ALL SELECT * FROM queued) c
         ORDER BY c.priority DESC, c.queued_at
         LIMIT p_max
    ), claimed AS (
        UPDATE drover.sessions s
           SET status = 'running',
               lease_owner = p_owner,
               lease_epoch = s.lease_epoch + 1,
               lease_acquired_at = clock_timestamp(),
               lease_expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond',
               last_heartbeat_at = clock_timestamp(),
               claim_attempts = s.claim_attempts + 1,
               lease_end_cause = NULL,
               last_seq = s.last_seq + CASE WHEN picked.cause = 'queued' THEN 1 ELSE 2 END,
               updated_at = now()
          FROM picked
         WHERE s.id = picked.id
        RETURNING s.id, s.lease_epoch, s.lease_expires_at, s.last_seq, s.agent_id, s.agent_version, s.environment_id,
                  s.lease_acquired_at, s.claim_attempts, picked.cause
    ), history AS (
        INSERT INTO drover.lease_history (session_id, epoch, owner, acquired_at, cause)
        SELECT c.id, c.lease_epoch, p_owner, c.lease_acquired_at, c.cause FROM claimed c
    ), rescheduled AS (
        INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch, created_at)
        SELECT c.id, c.last_seq - 1, 'session.status_rescheduled', '{}', c.lease_epoch, c.lease_acquired_at FROM claimed c
         WHERE c.cause <> 'queued'
    ), running AS (
        INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch, created_at)
        SELECT c.id, c.last_seq, 'session.status_running', '{}', c.lease_epoch, c.lease_acquired_at FROM claimed c
    )
    SELECT c.id, c.lease_epoch, c.lease_expires_at, c.last_seq, c.agent_id, c.agent_version, c.environment_id,
           c.claim_attempts FROM claimed c;
END;
$$;
