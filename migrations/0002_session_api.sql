-- The session log and lease queue API. Swift calls these same functions, so SQL users and the
-- Swift API have one implementation and the same semantics.
--
-- Errors use SQLSTATE class DR; the stable code is the first word of the message:
--   DR001 lease_lost        DR002 not_found          DR003 invalid_payload
--   DR004 payload_too_large DR005 unknown_event_type DR006 session_terminated
--   DR007 invalid_argument  DR010 append_only        (raise_coded maps code -> SQLSTATE)
-- A payload that is not JSON at all fails the cast with SQLSTATE 22P02 (invalid_payload).

CREATE FUNCTION drover.new_id(p_prefix text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT p_prefix || '_' || replace(gen_random_uuid()::text, '-', '')
$$;

-- The payload size limit in bytes: the setting drover.max_payload_bytes, default 1 MiB.
CREATE FUNCTION drover.max_payload_bytes() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('drover.max_payload_bytes', true), '')::integer, 1048576)
$$;

-- Checks a payload: present, within the size limit (checked before parsing, so an oversized one is
-- never parsed), and a JSON object. Text that is not JSON at all fails the cast with 22P02.
CREATE FUNCTION drover.check_payload(p_payload text, OUT payload jsonb, OUT code text, OUT message text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_payload IS NULL THEN
        code := 'invalid_payload';
        message := 'a payload is required';
    ELSIF octet_length(p_payload) > drover.max_payload_bytes() THEN
        code := 'payload_too_large';
        message := format('%s bytes is over the limit of %s bytes', octet_length(p_payload), drover.max_payload_bytes());
    ELSE
        payload := p_payload::jsonb;
        IF jsonb_typeof(payload) <> 'object' THEN
            code := 'invalid_payload';
            message := format('the payload must be a JSON object, not %s', jsonb_typeof(payload));
            payload := NULL;
        END IF;
    END IF;
END;
$$;

-- Raises the stable code as SQLSTATE class DR, with the code as the message's first word.
CREATE FUNCTION drover.raise_coded(p_code text, p_message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: %', p_code, p_message USING ERRCODE = CASE p_code
        WHEN 'lease_lost' THEN 'DR001' WHEN 'not_found' THEN 'DR002' WHEN 'invalid_payload' THEN 'DR003'
        WHEN 'payload_too_large' THEN 'DR004' WHEN 'unknown_event_type' THEN 'DR005'
        WHEN 'session_terminated' THEN 'DR006' WHEN 'invalid_argument' THEN 'DR007' ELSE 'DR000' END;
END;
$$;

-- Why a fenced write by (owner, epoch) found no row: the session is missing, or the lease moved on.
CREATE FUNCTION drover.write_refusal(p_session text, p_owner text, p_epoch bigint, OUT code text, OUT message text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s drover.sessions;
BEGIN
    SELECT * INTO s FROM drover.sessions WHERE id = p_session;
    IF NOT FOUND THEN
        code := 'not_found';
        message := format('no session %s', p_session);
    ELSE
        code := 'lease_lost';
        message := format('session %s is %s under epoch %s (owner %s), not epoch %s of %s', p_session, s.status,
                          s.lease_epoch, coalesce(s.lease_owner, 'none'), p_epoch, p_owner);
    END IF;
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
        PERFORM drover.raise_coded('invalid_argument', 'an agent needs a name and a model');
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
        PERFORM drover.raise_coded('not_found', format('no agent %s', p_id));
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
        PERFORM drover.raise_coded('invalid_argument', 'an environment needs a name');
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
    v_code text;
    v_message text;
BEGIN
    IF p_type IS NULL OR p_type NOT IN ('user.message', 'user.interrupt', 'user.tool_confirmation', 'user.custom_tool_result') THEN
        PERFORM drover.raise_coded('unknown_event_type', format('%s cannot be sent from the user side', coalesce(p_type, 'NULL')));
    END IF;
    SELECT c.payload, c.code, c.message INTO v_payload, v_code, v_message FROM drover.check_payload(p_payload) c;
    IF v_code IS NOT NULL THEN
        PERFORM drover.raise_coded(v_code, v_message);
    END IF;

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
            PERFORM drover.raise_coded('session_terminated', format('session %s accepts no more events', p_session));
        END IF;
        PERFORM drover.raise_coded('not_found', format('no session %s', p_session));
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
        PERFORM drover.raise_coded('not_found', format('no agent %s', p_agent));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM drover.environments WHERE id = p_environment) THEN
        PERFORM drover.raise_coded('not_found', format('no environment %s', p_environment));
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
        PERFORM drover.raise_coded('not_found', format('no session %s', p_session));
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
        PERFORM drover.raise_coded('invalid_argument', 'limit and tail must be between 1 and 10000');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM drover.sessions WHERE id = p_session) THEN
        PERFORM drover.raise_coded('not_found', format('no session %s', p_session));
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
-- epoch, which fences every write of the previous holder, and is recorded in lease_history.
CREATE FUNCTION drover.claim(p_owner text, p_max integer, p_ttl_ms integer)
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

-- The fenced writes. Each try_* function checks the lease in the same statement that writes, and
-- returns a code instead of raising, so that write_batch can run many of them in one transaction
-- (one commit) with a result for each. The raising wrappers below are the single-write API.

-- Appends an event as the lease holder: a stale or expired holder writes nothing (lease_lost).
CREATE FUNCTION drover.try_append(
    p_session text, p_owner text, p_epoch bigint, p_type text, p_payload text,
    OUT seq bigint, OUT id uuid, OUT created_at timestamptz, OUT code text, OUT message text
) LANGUAGE plpgsql AS $$
DECLARE
    v_payload jsonb;
BEGIN
    IF p_type IS NULL OR p_type !~ '^(agent|session|span)\.[a-z][a-z_]*$' THEN
        code := 'unknown_event_type';
        message := format('%s cannot be appended by a harness', coalesce(p_type, 'NULL'));
        RETURN;
    END IF;
    SELECT c.payload, c.code, c.message INTO v_payload, code, message FROM drover.check_payload(p_payload) c;
    IF code IS NOT NULL THEN
        RETURN;
    END IF;

    UPDATE drover.sessions s
       SET last_seq = s.last_seq + 1, updated_at = now()
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner
       AND s.lease_epoch = p_epoch AND s.lease_expires_at > clock_timestamp()
    RETURNING s.last_seq INTO seq;
    IF NOT FOUND THEN
        SELECT r.code, r.message INTO code, message FROM drover.write_refusal(p_session, p_owner, p_epoch) r;
        RETURN;
    END IF;
    INSERT INTO drover.events AS e (session_id, seq, type, payload, lease_epoch)
    VALUES (p_session, seq, p_type, v_payload, p_epoch)
    RETURNING e.id, e.created_at INTO id, created_at;
END;
$$;

-- Extends a lease, only while owner and epoch still match and it has not expired.
CREATE FUNCTION drover.try_heartbeat(
    p_session text, p_owner text, p_epoch bigint, p_ttl_ms integer,
    OUT expires_at timestamptz, OUT code text, OUT message text
) LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_ttl_ms, 0) < 100 THEN
        code := 'invalid_argument';
        message := 'the TTL must be at least 100 ms';
        RETURN;
    END IF;
    UPDATE drover.sessions s
       SET lease_expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond',
           last_heartbeat_at = clock_timestamp()
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner
       AND s.lease_epoch = p_epoch AND s.lease_expires_at > clock_timestamp()
    RETURNING s.lease_expires_at INTO expires_at;
    IF NOT FOUND THEN
        SELECT r.code, r.message INTO code, message FROM drover.write_refusal(p_session, p_owner, p_epoch) r;
    END IF;
END;
$$;

-- Ends a lease: to 'idle' (the turn is over), 'terminated', or 'queued' (a hand-off: a draining
-- harness gives the session back so another one resumes it at once, keeping its queue position).
-- If user events arrived after p_handled_through (the last seq the holder read; default: all of
-- them), an idle release re-queues the session instead, so nothing sent meanwhile is stranded.
CREATE FUNCTION drover.try_release(
    p_session text, p_owner text, p_epoch bigint, p_status text, p_handled_through bigint,
    OUT status text, OUT code text, OUT message text
) LANGUAGE plpgsql AS $$
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('idle', 'terminated', 'queued') THEN
        code := 'invalid_argument';
        message := format('release to idle, queued or terminated, not %s', coalesce(p_status, 'NULL'));
        RETURN;
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
    RETURNING s.status INTO status;
    IF NOT FOUND THEN
        SELECT r.code, r.message INTO code, message FROM drover.write_refusal(p_session, p_owner, p_epoch) r;
    ELSIF status = 'queued' THEN
        PERFORM pg_notify('drover_runnable', p_session);
    END IF;
END;
$$;

CREATE FUNCTION drover.append_event(p_session text, p_owner text, p_epoch bigint, p_type text, p_payload text)
RETURNS TABLE (seq bigint, id uuid, created_at timestamptz) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    r := drover.try_append(p_session, p_owner, p_epoch, p_type, p_payload);
    IF r.code IS NOT NULL THEN
        PERFORM drover.raise_coded(r.code, r.message);
    END IF;
    RETURN QUERY SELECT r.seq, r.id, r.created_at;
END;
$$;

CREATE FUNCTION drover.heartbeat(p_session text, p_owner text, p_epoch bigint, p_ttl_ms integer)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    r := drover.try_heartbeat(p_session, p_owner, p_epoch, p_ttl_ms);
    IF r.code IS NOT NULL THEN
        PERFORM drover.raise_coded(r.code, r.message);
    END IF;
    RETURN r.expires_at;
END;
$$;

CREATE FUNCTION drover.release(
    p_session text, p_owner text, p_epoch bigint, p_status text DEFAULT 'idle', p_handled_through bigint DEFAULT NULL
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    r := drover.try_release(p_session, p_owner, p_epoch, p_status, p_handled_through);
    IF r.code IS NOT NULL THEN
        PERFORM drover.raise_coded(r.code, r.message);
    END IF;
    RETURN r.status;
END;
$$;

-- Group commit: many fenced writes, possibly for many sessions, in one transaction and one
-- commit. p_ops is a JSON array of
--   {"op":"append","session":S,"owner":O,"epoch":E,"type":T,"payload":I}   (I indexes p_payloads)
--   {"op":"heartbeat","session":S,"owner":O,"epoch":E,"ttl_ms":N}
--   {"op":"release","session":S,"owner":O,"epoch":E,"status":"idle","handled_through":N}
-- Payloads travel as text beside the array so that each is size-checked before it is parsed.
-- Each op gets a row (ord = its 1-based position): on success code is NULL and seq/id/created_at
-- (append), expires_at (heartbeat) or status (release) are set; a refused op writes nothing and
-- does not disturb the others.
CREATE FUNCTION drover.write_batch(p_ops jsonb, p_payloads text[] DEFAULT '{}')
RETURNS TABLE (ord integer, seq bigint, id uuid, created_at timestamptz, expires_at timestamptz, status text,
               code text, message text)
LANGUAGE plpgsql AS $$
DECLARE
    op jsonb;
    a record;
    h record;
    r record;
BEGIN
    IF p_ops IS NULL OR jsonb_typeof(p_ops) <> 'array' THEN
        PERFORM drover.raise_coded('invalid_argument', 'write_batch takes a JSON array of ops');
    END IF;
    FOR op, ord IN SELECT e.value, e.ordinality FROM jsonb_array_elements(p_ops) WITH ORDINALITY e LOOP
        seq := NULL; id := NULL; created_at := NULL; expires_at := NULL; status := NULL; code := NULL; message := NULL;
        CASE op->>'op'
        WHEN 'append' THEN
            a := drover.try_append(op->>'session', op->>'owner', (op->>'epoch')::bigint, op->>'type',
                                   p_payloads[(op->>'payload')::integer]);
            seq := a.seq; id := a.id; created_at := a.created_at; code := a.code; message := a.message;
        WHEN 'heartbeat' THEN
            h := drover.try_heartbeat(op->>'session', op->>'owner', (op->>'epoch')::bigint, (op->>'ttl_ms')::integer);
            expires_at := h.expires_at; code := h.code; message := h.message;
        WHEN 'release' THEN
            r := drover.try_release(op->>'session', op->>'owner', (op->>'epoch')::bigint,
                                    coalesce(op->>'status', 'idle'), (op->>'handled_through')::bigint);
            status := r.status; code := r.code; message := r.message;
        ELSE
            code := 'invalid_argument';
            message := format('unknown op %s', coalesce(op->>'op', 'NULL'));
        END CASE;
        RETURN NEXT;
    END LOOP;
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
