-- Every lease ever granted, so that `drover verify` can check that each event was written under
-- the epoch in force at the time, and operators can see who held a session when.
CREATE TABLE drover.lease_history (
    session_id  text        NOT NULL REFERENCES drover.sessions (id),
    epoch       bigint      NOT NULL,
    owner       text        NOT NULL,
    acquired_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, epoch)
);

-- The claim of 0002, now also recording each lease it grants in the same statement.
CREATE OR REPLACE FUNCTION drover.claim(p_owner text, p_max integer, p_ttl_ms integer)
RETURNS TABLE (session_id text, lease_epoch bigint, lease_expires_at timestamptz, last_seq bigint,
               agent_id text, agent_version integer, environment_id text)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_owner, '') = '' OR coalesce(p_max, 0) NOT BETWEEN 1 AND 1000 OR coalesce(p_ttl_ms, 0) < 100 THEN
        PERFORM drover.raise_coded('invalid_argument', 'claim needs an owner, 1..1000 sessions and a TTL of at least 100 ms');
    END IF;
    RETURN QUERY
    WITH expired AS (
        SELECT s.id, s.priority, s.queued_at FROM drover.sessions s
         WHERE s.status = 'running' AND s.lease_expires_at < now()
         ORDER BY s.lease_expires_at
         LIMIT p_max
         FOR UPDATE SKIP LOCKED
    ), queued AS (
        SELECT s.id, s.priority, s.queued_at FROM drover.sessions s
         WHERE s.status = 'queued'
         ORDER BY s.priority DESC, s.queued_at
         LIMIT p_max
         FOR UPDATE SKIP LOCKED
    ), picked AS (
        SELECT c.id FROM (SELECT * FROM expired UNION ALL SELECT * FROM queued) c
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
               updated_at = now()
          FROM picked
         WHERE s.id = picked.id
        RETURNING s.id, s.lease_epoch, s.lease_expires_at, s.last_seq, s.agent_id, s.agent_version, s.environment_id,
                  s.lease_acquired_at
    ), history AS (
        INSERT INTO drover.lease_history (session_id, epoch, owner, acquired_at)
        SELECT c.id, c.lease_epoch, p_owner, c.lease_acquired_at FROM claimed c
    )
    SELECT c.id, c.lease_epoch, c.lease_expires_at, c.last_seq, c.agent_id, c.agent_version, c.environment_id FROM claimed c;
END;
$$;
