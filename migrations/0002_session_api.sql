-- The session log and lease queue API. Swift calls these same functions, so SQL users and the
-- Swift API have one implementation and the same semantics.
--
-- Errors use SQLSTATE class DR; the stable code is the first word of the message:
--   DR001 lease_lost        DR002 not_found          DR003 invalid_payload
--   DR004 payload_too_large DR005 unknown_event_type DR006 session_terminated
--   DR007 invalid_argument  DR010 append_only
-- A payload that is not JSON at all fails the cast with SQLSTATE 22P02 (invalid_payload).

CREATE FUNCTION drover.new_id(p_prefix text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT p_prefix || '_' || replace(gen_random_uuid()::text, '-', '')
$$;

-- The payload size limit in bytes: the setting drover.max_payload_bytes, default 1 MiB.
CREATE FUNCTION drover.max_payload_bytes() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('drover.max_payload_bytes', true), '')::integer, 1048576)
$$;

-- Checks the size before parsing, so an oversized payload is never parsed.
CREATE FUNCTION drover.parse_payload(p_payload text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v jsonb;
BEGIN
    IF p_payload IS NULL THEN
        RAISE EXCEPTION 'invalid_payload: a payload is required' USING ERRCODE = 'DR003';
    END IF;
    IF octet_length(p_payload) > drover.max_payload_bytes() THEN
        RAISE EXCEPTION 'payload_too_large: % bytes is over the limit of % bytes',
            octet_length(p_payload), drover.max_payload_bytes() USING ERRCODE = 'DR004';
    END IF;
    v := p_payload::jsonb;
    IF jsonb_typeof(v) <> 'object' THEN
        RAISE EXCEPTION 'invalid_payload: the payload must be a JSON object, not %', jsonb_typeof(v)
            USING ERRCODE = 'DR003';
    END IF;
    RETURN v;
END;
$$;

-- A session that does not exist, or one that does but refused the write: says which.
CREATE FUNCTION drover.raise_write_refused(p_session text, p_owner text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s drover.sessions;
BEGIN
    SELECT * INTO s FROM drover.sessions WHERE id = p_session;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'not_found: no session %', p_session USING ERRCODE = 'DR002';
    END IF;
    RAISE EXCEPTION 'lease_lost: session % is % under epoch % (owner %), not epoch % of %',
        p_session, s.status, s.lease_epoch, coalesce(s.lease_owner, 'none'), p_epoch, p_owner
        USING ERRCODE = 'DR001';
END;
$$;

-- Agents ---------------------------------------------------------------------------------------

CREATE FUNCTION drover.create_agent(
    p_name text, p_model text, p_system_prompt text DEFAULT '', p_tools jsonb DEFAULT '[]',
    p_config jsonb DEFAULT '{}'
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_id text := drover.new_id('agent');
BEGIN
    IF coalesce(p_name, '') = '' OR coalesce(p_model, '') = '' THEN
        RAISE EXCEPTION 'invalid_argument: an agent needs a name and a model' USING ERRCODE = 'DR007';
    END IF;
    INSERT INTO drover.agents (id, version, name, model, system_prompt, tools, config)
    VALUES (v_id, 1, p_name, p_model, coalesce(p_system_prompt, ''), coalesce(p_tools, '[]'), coalesce(p_config, '{}'));
    RETURN v_id;
END;
$$;

-- A new version of an agent; sessions created earlier keep the version they pinned.
CREATE FUNCTION drover.update_agent(
    p_id text, p_model text DEFAULT NULL, p_system_prompt text DEFAULT NULL, p_tools jsonb DEFAULT NULL,
    p_config jsonb DEFAULT NULL
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    a drover.agents;
BEGIN
    SELECT * INTO a FROM drover.agents WHERE id = p_id ORDER BY version DESC LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'not_found: no agent %', p_id USING ERRCODE = 'DR002';
    END IF;
    INSERT INTO drover.agents (id, version, name, model, system_prompt, tools, config)
    VALUES (p_id, a.version + 1, a.name, coalesce(p_model, a.model), coalesce(p_system_prompt, a.system_prompt),
            coalesce(p_tools, a.tools), coalesce(p_config, a.config));
    RETURN a.version + 1;
END;
$$;

CREATE FUNCTION drover.create_environment(p_name text, p_config jsonb DEFAULT '{}') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := drover.new_id('env');
BEGIN
    IF coalesce(p_name, '') = '' THEN
        RAISE EXCEPTION 'invalid_argument: an environment needs a name' USING ERRCODE = 'DR007';
    END IF;
    INSERT INTO drover.environments (id, name, config) VALUES (v_id, p_name, coalesce(p_config, '{}'));
    RETURN v_id;
END;
$$;

-- Sessions -------------------------------------------------------------------------------------

-- User-side events: no lease needed. A user.message (or other user input) makes an idle session
-- queued and wakes harnesses with a notification, which is only a hint: harnesses also poll.
CREATE FUNCTION drover.send_event(p_session text, p_type text, p_payload text)
RETURNS TABLE (seq bigint, id uuid, created_at timestamptz) LANGUAGE plpgsql AS $$
DECLARE
    v_payload jsonb;
    v_seq bigint;
    v_status text;
BEGIN
    IF p_type IS NULL OR p_type NOT IN ('user.message', 'user.interrupt', 'user.tool_confirmation', 'user.custom_tool_result') THEN
        RAISE EXCEPTION 'unknown_event_type: % cannot be sent from the user side', coalesce(p_type, 'NULL')
            USING ERRCODE = 'DR005';
    END IF;
    v_payload := drover.parse_payload(p_payload);

    UPDATE drover.sessions s
       SET last_seq = s.last_seq + 1,
           last_user_seq = s.last_seq + 1,
           updated_at = now(),
           status = CASE WHEN s.status = 'idle' AND p_type <> 'user.interrupt' THEN 'queued' ELSE s.status END,
           queued_at = CASE WHEN s.status = 'idle' AND p_type <> 'user.interrupt' THEN now() ELSE s.queued_at END
     WHERE s.id = p_session AND s.status <> 'terminated'
    RETURNING s.last_seq, s.status INTO v_seq, v_status;

    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM drover.sessions s WHERE s.id = p_session) THEN
            RAISE EXCEPTION 'session_terminated: session % accepts no more events', p_session USING ERRCODE = 'DR006';
        END IF;
        RAISE EXCEPTION 'not_found: no session %', p_session USING ERRCODE = 'DR002';
    END IF;

    IF v_status = 'queued' THEN
        PERFORM pg_notify('drover_runnable', p_session);
    ELSIF v_status = 'running' THEN
        PERFORM pg_notify('drover_user_event', p_session);
    END IF;

    RETURN QUERY
    INSERT INTO drover.events AS e (session_id, seq, type, payload, lease_epoch)
    VALUES (p_session, v_seq, p_type, v_payload, NULL)
    RETURNING e.seq, e.id, e.created_at;
END;
$$;

CREATE FUNCTION drover.create_session(
    p_agent text, p_environment text, p_first_message text DEFAULT NULL, p_priority integer DEFAULT 0
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_id text := drover.new_id('sesn');
    v_version integer;
BEGIN
    SELECT max(version) INTO v_version FROM drover.agents WHERE id = p_agent;
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'not_found: no agent %', p_agent USING ERRCODE = 'DR002';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM drover.environments WHERE id = p_environment) THEN
        RAISE EXCEPTION 'not_found: no environment %', p_environment USING ERRCODE = 'DR002';
    END IF;
    INSERT INTO drover.sessions (id, agent_id, agent_version, environment_id, priority)
    VALUES (v_id, p_agent, v_version, p_environment, coalesce(p_priority, 0));
    IF p_first_message IS NOT NULL THEN
        PERFORM drover.send_event(v_id, 'user.message', p_first_message);
    END IF;
    RETURN v_id;
END;
$$;

CREATE FUNCTION drover.get_session(p_session text) RETURNS drover.sessions LANGUAGE plpgsql STABLE AS $$
DECLARE
    s drover.sessions;
BEGIN
    SELECT * INTO s FROM drover.sessions WHERE id = p_session;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'not_found: no session %', p_session USING ERRCODE = 'DR002';
    END IF;
    RETURN s;
END;
$$;

-- A positional slice of a session's log, in seq order: events after p_after and before p_before
-- (both exclusive), only of p_types when given; the first p_limit of them, or with p_tail the
-- last p_tail of them. Page forward by passing the last seq seen as p_after.
CREATE FUNCTION drover.get_events(
    p_session text, p_after bigint DEFAULT NULL, p_before bigint DEFAULT NULL, p_limit integer DEFAULT 100,
    p_tail integer DEFAULT NULL, p_types text[] DEFAULT NULL
) RETURNS SETOF drover.events LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_after bigint := coalesce(p_after, 0);
    v_before bigint := coalesce(p_before, 9223372036854775807);
BEGIN
    IF coalesce(p_limit, 100) NOT BETWEEN 1 AND 10000 OR coalesce(p_tail, 1) NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'invalid_argument: limit and tail must be between 1 and 10000' USING ERRCODE = 'DR007';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM drover.sessions WHERE id = p_session) THEN
        RAISE EXCEPTION 'not_found: no session %', p_session USING ERRCODE = 'DR002';
    END IF;
    IF p_tail IS NOT NULL THEN
        RETURN QUERY
        SELECT t.* FROM (
            SELECT e.* FROM drover.events e
             WHERE e.session_id = p_session AND e.seq > v_after AND e.seq < v_before
               AND (p_types IS NULL OR e.type = ANY (p_types))
             ORDER BY e.seq DESC LIMIT p_tail
        ) t ORDER BY t.seq;
    ELSE
        RETURN QUERY
        SELECT e.* FROM drover.events e
         WHERE e.session_id = p_session AND e.seq > v_after AND e.seq < v_before
           AND (p_types IS NULL OR e.type = ANY (p_types))
         ORDER BY e.seq LIMIT coalesce(p_limit, 100);
    END IF;
END;
$$;

-- Lease queue ----------------------------------------------------------------------------------

-- Claims up to p_max runnable sessions: queued ones, and running ones whose lease expired (their
-- harness died). Rows another claimer holds are skipped, never waited on. Each claim bumps the
-- epoch, which fences every write of the previous holder.
CREATE FUNCTION drover.claim(p_owner text, p_max integer, p_ttl_ms integer)
RETURNS TABLE (session_id text, lease_epoch bigint, lease_expires_at timestamptz, last_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_owner, '') = '' OR coalesce(p_max, 0) NOT BETWEEN 1 AND 1000 OR coalesce(p_ttl_ms, 0) < 100 THEN
        RAISE EXCEPTION 'invalid_argument: claim needs an owner, 1..1000 sessions and a TTL of at least 100 ms'
            USING ERRCODE = 'DR007';
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
    )
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
    RETURNING s.id, s.lease_epoch, s.lease_expires_at, s.last_seq;
END;
$$;

-- Appends an event as the lease holder. The lease is checked in the same statement that takes
-- the next seq, so a stale or expired holder writes nothing and gets lease_lost.
CREATE FUNCTION drover.append_event(p_session text, p_owner text, p_epoch bigint, p_type text, p_payload text)
RETURNS TABLE (seq bigint, id uuid, created_at timestamptz) LANGUAGE plpgsql AS $$
DECLARE
    v_payload jsonb;
    v_seq bigint;
BEGIN
    IF p_type IS NULL OR p_type !~ '^(agent|session|span)\.[a-z][a-z_]*$' THEN
        RAISE EXCEPTION 'unknown_event_type: % cannot be appended by a harness', coalesce(p_type, 'NULL')
            USING ERRCODE = 'DR005';
    END IF;
    v_payload := drover.parse_payload(p_payload);

    UPDATE drover.sessions s
       SET last_seq = s.last_seq + 1, updated_at = now()
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner
       AND s.lease_epoch = p_epoch AND s.lease_expires_at > clock_timestamp()
    RETURNING s.last_seq INTO v_seq;
    IF NOT FOUND THEN
        PERFORM drover.raise_write_refused(p_session, p_owner, p_epoch);
    END IF;

    RETURN QUERY
    INSERT INTO drover.events AS e (session_id, seq, type, payload, lease_epoch)
    VALUES (p_session, v_seq, p_type, v_payload, p_epoch)
    RETURNING e.seq, e.id, e.created_at;
END;
$$;

-- Extends a lease, only while owner and epoch still match and it has not expired.
CREATE FUNCTION drover.heartbeat(p_session text, p_owner text, p_epoch bigint, p_ttl_ms integer)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    v_expires timestamptz;
BEGIN
    IF coalesce(p_ttl_ms, 0) < 100 THEN
        RAISE EXCEPTION 'invalid_argument: the TTL must be at least 100 ms' USING ERRCODE = 'DR007';
    END IF;
    UPDATE drover.sessions s
       SET lease_expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond',
           last_heartbeat_at = clock_timestamp()
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner
       AND s.lease_epoch = p_epoch AND s.lease_expires_at > clock_timestamp()
    RETURNING s.lease_expires_at INTO v_expires;
    IF NOT FOUND THEN
        PERFORM drover.raise_write_refused(p_session, p_owner, p_epoch);
    END IF;
    RETURN v_expires;
END;
$$;

-- Ends a lease. To 'idle' or 'terminated'. If user events arrived after p_handled_through (the
-- last seq the holder read), an 'idle' release re-queues the session instead, so nothing sent
-- while the harness was finishing is stranded.
CREATE FUNCTION drover.release(
    p_session text, p_owner text, p_epoch bigint, p_status text DEFAULT 'idle', p_handled_through bigint DEFAULT NULL
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('idle', 'terminated') THEN
        RAISE EXCEPTION 'invalid_argument: release to idle or terminated, not %', coalesce(p_status, 'NULL')
            USING ERRCODE = 'DR007';
    END IF;
    UPDATE drover.sessions s
       SET status = CASE WHEN p_status = 'idle' AND s.last_user_seq > coalesce(p_handled_through, s.last_seq)
                         THEN 'queued' ELSE p_status END,
           queued_at = CASE WHEN p_status = 'idle' AND s.last_user_seq > coalesce(p_handled_through, s.last_seq)
                            THEN now() ELSE s.queued_at END,
           lease_owner = NULL,
           lease_expires_at = NULL,
           updated_at = now()
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner
       AND s.lease_epoch = p_epoch AND s.lease_expires_at > clock_timestamp()
    RETURNING s.status INTO v_status;
    IF NOT FOUND THEN
        PERFORM drover.raise_write_refused(p_session, p_owner, p_epoch);
    END IF;
    IF v_status = 'queued' THEN
        PERFORM pg_notify('drover_runnable', p_session);
    END IF;
    RETURN v_status;
END;
$$;

-- Harness registry -----------------------------------------------------------------------------

CREATE FUNCTION drover.register_harness(p_id text, p_host text, p_pid integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO drover.harnesses (id, host, pid) VALUES (p_id, p_host, p_pid)
    ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), stopped_at = NULL
$$;

CREATE FUNCTION drover.harness_heartbeat(p_id text) RETURNS void LANGUAGE sql AS $$
    UPDATE drover.harnesses SET last_heartbeat_at = now() WHERE id = p_id
$$;

CREATE FUNCTION drover.harness_stopped(p_id text) RETURNS void LANGUAGE sql AS $$
    UPDATE drover.harnesses SET stopped_at = now(), last_heartbeat_at = now() WHERE id = p_id
$$;
