-- A session's usage and stats without reading its whole log at every render (issue #22: retrieve
-- must cost the same at 10 or 100,000 events; issue #27 item 6). The sums over the log up to a
-- seq are kept per session; a render reads only the events after it (by the (session_id, seq)
-- key) and, when those were many, moves the mark on. Nothing on the write path changes: the
-- harness's cycle and appends stay as they were.
CREATE TABLE drover.session_usage (
    session_id              text        PRIMARY KEY REFERENCES drover.sessions (id) ON DELETE CASCADE,
    through_seq             bigint      NOT NULL,
    input_tokens            bigint      NOT NULL,
    output_tokens           bigint      NOT NULL,
    cache_read_input_tokens bigint      NOT NULL,
    -- Seconds of running periods that ended at or before through_seq, and one still open there.
    active_closed           float8      NOT NULL,
    running_since           timestamptz
);

-- Usage and active seconds of a session whose last seq is p_last_seq (the row's, read in the same
-- statement, so every event up to it is visible). Active time is each session.status_running's
-- span until the next status event, the last one until now (as 0010's api_active_seconds).
CREATE FUNCTION drover.api_session_usage(p_session text, p_last_seq bigint,
                                         OUT input_tokens bigint, OUT output_tokens bigint,
                                         OUT cache_read_input_tokens bigint, OUT active_seconds float8)
LANGUAGE plpgsql AS $$
DECLARE
    c drover.session_usage;
    e record;
    v_usage jsonb;
BEGIN
    SELECT * INTO c FROM drover.session_usage u WHERE u.session_id = p_session;
    IF NOT FOUND THEN
        c := ROW(p_session, 0, 0, 0, 0, 0, NULL)::drover.session_usage;
    END IF;
    FOR e IN SELECT ev.type, ev.payload, ev.created_at FROM drover.events ev
              WHERE ev.session_id = p_session AND ev.seq > c.through_seq AND ev.seq <= p_last_seq
                AND ev.type IN ('span.model_request_end', 'session.status_running', 'session.status_idle')
              ORDER BY ev.seq LOOP
        IF e.type = 'span.model_request_end' THEN
            v_usage := coalesce(e.payload -> 'model_usage', e.payload -> 'usage');
            c.input_tokens := c.input_tokens + coalesce((v_usage ->> 'input_tokens')::bigint, 0);
            c.output_tokens := c.output_tokens + coalesce((v_usage ->> 'output_tokens')::bigint, 0);
            c.cache_read_input_tokens := c.cache_read_input_tokens + coalesce((v_usage ->> 'cache_read_input_tokens')::bigint, 0);
        ELSIF e.type = 'session.status_running' THEN
            c.running_since := coalesce(c.running_since, e.created_at);
        ELSIF c.running_since IS NOT NULL THEN
            c.active_closed := c.active_closed + extract(epoch FROM e.created_at - c.running_since);
            c.running_since := NULL;
        END IF;
    END LOOP;
    input_tokens := c.input_tokens;
    output_tokens := c.output_tokens;
    cache_read_input_tokens := c.cache_read_input_tokens;
    active_seconds := c.active_closed + coalesce(extract(epoch FROM now() - c.running_since), 0);
    -- Kept once the next render would otherwise read 64 or more events again; a concurrent
    -- render that got further wins.
    IF p_last_seq - c.through_seq >= 64 THEN
        INSERT INTO drover.session_usage AS u
        VALUES (p_session, p_last_seq, c.input_tokens, c.output_tokens, c.cache_read_input_tokens, c.active_closed, c.running_since)
        ON CONFLICT (session_id) DO UPDATE
           SET through_seq = excluded.through_seq, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
               cache_read_input_tokens = excluded.cache_read_input_tokens, active_closed = excluded.active_closed,
               running_since = excluded.running_since
         WHERE u.through_seq < excluded.through_seq;
    END IF;
END;
$$;

-- As 0013's, with stats and usage from api_session_usage (volatile now: it may move the mark on).
CREATE OR REPLACE FUNCTION drover.api_session_json(s drover.sessions) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    SELECT jsonb_build_object(
        'type', 'session', 'id', s.id, 'title', s.title, 'metadata', s.metadata, 'environment_id', s.environment_id,
        'status', CASE s.status WHEN 'queued' THEN 'running' ELSE s.status END,
        'agent', (SELECT (drover.api_agent_json(a) - 'created_at' - 'updated_at' - 'archived_at' - 'metadata')
                    FROM drover.agents a WHERE a.id = s.agent_id AND a.version = s.agent_version),
        'resources', (SELECT coalesce(jsonb_agg(drover.api_session_resource_json(r) ORDER BY r.created_at, r.id), '[]')
                        FROM drover.session_resources r WHERE r.session_id = s.id),
        'vault_ids', to_jsonb(s.vault_ids), 'outcome_evaluations', '[]'::jsonb,
        'stats', jsonb_build_object('duration_seconds', extract(epoch FROM now() - s.created_at), 'active_seconds', u.active_seconds),
        'usage', jsonb_build_object(
                     'active_seconds', u.active_seconds, 'input_tokens', u.input_tokens, 'output_tokens', u.output_tokens,
                     'cache_read_input_tokens', u.cache_read_input_tokens),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at),
        'archived_at', drover.api_time(s.archived_at))
      FROM drover.api_session_usage(s.id, s.last_seq) u
$$;

-- Nothing reads it any more.
DROP FUNCTION drover.api_active_seconds(text);
