-- Holding up against the real world: a payload limit no client can raise, a crash-loop guard in
-- the claim, one lock order for group commits, and sandboxes recorded under the lease.

-- Settings only the schema's owner may change. The payload limit used to be read with
-- current_setting, which any SQL client can raise for its own session with SET.
CREATE TABLE drover.settings (
    name  text PRIMARY KEY,
    value text NOT NULL,
    CHECK (name IN ('max_payload_bytes')),
    CHECK (name <> 'max_payload_bytes' OR value ~ '^[1-9][0-9]{0,9}$')
);
-- A limit configured the old way (ALTER DATABASE … SET) is carried over once.
INSERT INTO drover.settings (name, value)
VALUES ('max_payload_bytes', coalesce(nullif(current_setting('drover.max_payload_bytes', true), ''), '1048576'));
REVOKE ALL ON drover.settings FROM PUBLIC;

CREATE OR REPLACE FUNCTION drover.max_payload_bytes() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value::integer FROM drover.settings WHERE name = 'max_payload_bytes'), 1048576)
$$;

-- Claims since the session was last released cleanly: a harness that dies holding a session
-- leaves it claimed again by the next one; a session that kills every harness that runs it
-- would be claimed forever. The harness ends it as retries_exhausted past a limit.
ALTER TABLE drover.sessions ADD COLUMN claim_attempts integer NOT NULL DEFAULT 0;

DROP FUNCTION drover.claim(text, integer, integer);
-- Claims up to p_max runnable sessions: queued ones, and running ones whose lease expired (their
-- harness died). Rows another claimer holds are skipped, never waited on. Each claim bumps the
-- epoch, which fences every write of the previous holder, is recorded in lease_history, and
-- counts an attempt (reset by every release).
CREATE FUNCTION drover.claim(p_owner text, p_max integer, p_ttl_ms integer)
RETURNS TABLE (session_id text, lease_epoch bigint, lease_expires_at timestamptz, last_seq bigint,
               agent_id text, agent_version integer, environment_id text, attempt integer)
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
               claim_attempts = s.claim_attempts + 1,
               updated_at = now()
          FROM picked
         WHERE s.id = picked.id
        RETURNING s.id, s.lease_epoch, s.lease_expires_at, s.last_seq, s.agent_id, s.agent_version, s.environment_id,
                  s.lease_acquired_at, s.claim_attempts
    ), history AS (
        INSERT INTO drover.lease_history (session_id, epoch, owner, acquired_at)
        SELECT c.id, c.lease_epoch, p_owner, c.lease_acquired_at FROM claimed c
    )
    SELECT c.id, c.lease_epoch, c.lease_expires_at, c.last_seq, c.agent_id, c.agent_version, c.environment_id,
           c.claim_attempts FROM claimed c;
END;
$$;

-- Ends a lease (as before), and resets the attempt count: the holder lived to give it back.
CREATE OR REPLACE FUNCTION drover.try_release(
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
           claim_attempts = 0,
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

-- Group commit, as before, but the ops run in session order (each session's own ops keep their
-- order): concurrent batches then lock session rows in the same order and cannot deadlock.
-- The rows still come back in the order of p_ops, with ord = the op's position.
CREATE OR REPLACE FUNCTION drover.write_batch(p_ops jsonb, p_payloads text[] DEFAULT '{}')
RETURNS TABLE (ord integer, seq bigint, id uuid, created_at timestamptz, expires_at timestamptz, status text,
               code text, message text)
LANGUAGE plpgsql AS $$
DECLARE
    op jsonb;
    i integer;
    a record;
    h record;
    r record;
    n integer;
    v_seq bigint[];
    v_id uuid[];
    v_created timestamptz[];
    v_expires timestamptz[];
    v_status text[];
    v_code text[];
    v_message text[];
BEGIN
    IF p_ops IS NULL OR jsonb_typeof(p_ops) <> 'array' THEN
        PERFORM drover.raise_coded('invalid_argument', 'write_batch takes a JSON array of ops');
    END IF;
    n := jsonb_array_length(p_ops);
    v_seq := array_fill(NULL::bigint, ARRAY[n]); v_id := array_fill(NULL::uuid, ARRAY[n]);
    v_created := array_fill(NULL::timestamptz, ARRAY[n]); v_expires := array_fill(NULL::timestamptz, ARRAY[n]);
    v_status := array_fill(NULL::text, ARRAY[n]); v_code := array_fill(NULL::text, ARRAY[n]);
    v_message := array_fill(NULL::text, ARRAY[n]);
    FOR op, i IN SELECT e.value, e.ordinality FROM jsonb_array_elements(p_ops) WITH ORDINALITY e
                  ORDER BY e.value->>'session', e.ordinality LOOP
        CASE op->>'op'
        WHEN 'append' THEN
            a := drover.try_append(op->>'session', op->>'owner', (op->>'epoch')::bigint, op->>'type',
                                   p_payloads[(op->>'payload')::integer]);
            v_seq[i] := a.seq; v_id[i] := a.id; v_created[i] := a.created_at; v_code[i] := a.code; v_message[i] := a.message;
        WHEN 'heartbeat' THEN
            h := drover.try_heartbeat(op->>'session', op->>'owner', (op->>'epoch')::bigint, (op->>'ttl_ms')::integer);
            v_expires[i] := h.expires_at; v_code[i] := h.code; v_message[i] := h.message;
        WHEN 'release' THEN
            r := drover.try_release(op->>'session', op->>'owner', (op->>'epoch')::bigint,
                                    coalesce(op->>'status', 'idle'), (op->>'handled_through')::bigint);
            v_status[i] := r.status; v_code[i] := r.code; v_message[i] := r.message;
        ELSE
            v_code[i] := 'invalid_argument';
            v_message[i] := format('unknown op %s', coalesce(op->>'op', 'NULL'));
        END CASE;
    END LOOP;
    RETURN QUERY SELECT g::integer, v_seq[g], v_id[g], v_created[g], v_expires[g], v_status[g], v_code[g], v_message[g]
                   FROM generate_series(1, n) g;
END;
$$;

-- Which lease recorded a sandbox for its session (NULL: recorded by the pool alone).
ALTER TABLE drover.sandboxes ADD COLUMN lease_epoch bigint;

-- Records p_id as the sandbox of p_session, fenced by the lease: a stale or expired holder is
-- refused (lease_lost), so a harness that lost its lease never adopts a sandbox. Returns the
-- session's sandbox: one a holder recorded before (the caller then destroys its own), or p_id.
CREATE FUNCTION drover.record_session_sandbox(p_id text, p_pool text, p_session text, p_owner text, p_epoch bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_existing text;
    v_code text;
    v_message text;
BEGIN
    PERFORM 1 FROM drover.sessions s
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner
       AND s.lease_epoch = p_epoch AND s.lease_expires_at > clock_timestamp()
       FOR UPDATE;
    IF NOT FOUND THEN
        SELECT r.code, r.message INTO v_code, v_message FROM drover.write_refusal(p_session, p_owner, p_epoch) r;
        PERFORM drover.raise_coded(v_code, v_message);
    END IF;
    SELECT s.id INTO v_existing
      FROM drover.sandboxes s JOIN drover.sandbox_pools p ON p.id = s.pool_id
     WHERE s.session_id = p_session AND s.status = 'active' AND p.status = 'up' AND s.lease_epoch IS NOT NULL AND s.id <> p_id
     ORDER BY s.created_at LIMIT 1;
    IF FOUND THEN
        RETURN v_existing;
    END IF;
    INSERT INTO drover.sandboxes AS x (id, pool_id, session_id, lease_epoch) VALUES (p_id, p_pool, p_session, p_epoch)
    ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, lease_epoch = excluded.lease_epoch;
    RETURN p_id;
END;
$$;
