-- session.status_rescheduled (issue #23, item 5): a session claimed because its holder stopped
-- without giving it back (its lease expired, or was cut when the harness was found dead) says so
-- in its log, right before the session.status_running of the claim that resumes it, as Managed
-- Agents' "recovering from an error state and rescheduled" does. A session handed off or queued
-- by a user event is not rescheduled.
--
-- sessions.update(agent={tools, mcp_servers}) (issue #23, item 5): the session keeps the agent
-- version it was created with (`agent_id`, `agent_version`: what it shows and is listed by) and
-- runs a copy with the new tools or MCP servers (`run_agent_*`, an internal agent version that
-- drover api writes), which the claim hands the harness. As 0008's claim otherwise.
ALTER TABLE drover.sessions ADD COLUMN run_agent_id text, ADD COLUMN run_agent_version integer;

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
        RETURNING s.id, s.lease_epoch, s.lease_expires_at, s.last_seq, coalesce(s.run_agent_id, s.agent_id) AS agent_id,
                  coalesce(s.run_agent_version, s.agent_version) AS agent_version, s.environment_id,
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

-- As 0016's, with the agent the session runs (its tools and MCP servers as last updated) under the
-- id and version it was created with.
CREATE OR REPLACE FUNCTION drover.api_session_json(s drover.sessions) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'type', 'session', 'id', s.id, 'title', s.title, 'metadata', s.metadata, 'environment_id', s.environment_id,
        'status', CASE s.status WHEN 'queued' THEN 'running' ELSE s.status END,
        'agent', (SELECT (drover.api_agent_json(a) - 'created_at' - 'updated_at' - 'archived_at' - 'metadata')
                         || jsonb_build_object('id', s.agent_id, 'version', s.agent_version)
                    FROM drover.agents a
                   WHERE a.id = coalesce(s.run_agent_id, s.agent_id) AND a.version = coalesce(s.run_agent_version, s.agent_version)),
        'resources', (SELECT coalesce(jsonb_agg(drover.api_session_resource_json(r) ORDER BY r.created_at, r.id), '[]')
                        FROM drover.session_resources r WHERE r.session_id = s.id),
        'vault_ids', to_jsonb(s.vault_ids), 'outcome_evaluations', '[]'::jsonb,
        'stats', jsonb_build_object('duration_seconds', extract(epoch FROM now() - s.created_at), 'active_seconds', u.active_seconds),
        'usage', jsonb_build_object(
                     'active_seconds', u.active_seconds, 'input_tokens', u.input_tokens, 'output_tokens', u.output_tokens,
                     'cache_read_input_tokens', u.cache_read_input_tokens),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at),
        'archived_at', drover.api_time(s.archived_at))
      FROM drover.api_session_usage(s.id, s.last_seq) u);
END;
$$;
