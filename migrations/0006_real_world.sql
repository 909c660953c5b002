-- Holding up against the real world: a payload limit no client can raise, a crash-loop guard in
-- the claim (the claim that counts attempts is in 0008), and sandboxes recorded under the lease.
-- One lock order for group commits came with the set-based write_batch of 0008.

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

-- The claim counts attempts (drover.claim, as migration 0008 defines it).

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
