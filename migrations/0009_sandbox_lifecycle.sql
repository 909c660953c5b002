-- Sandbox lifecycle and a registry in which each pool writes only its own rows.
--
-- Before: the first pool to heartbeat after an outage marked every other silent pool and all its
-- sandboxes gone, and a pool that came back flipped itself up while its sandboxes stayed gone. Now
-- a pool's liveness is read, never written by another: a pool is live while its heartbeat is
-- fresher than its own silent_after. Each heartbeat carries the pool's live sandboxes, so its rows
-- heal themselves (a sandbox marked ended by a lost update comes back; one whose end was never
-- recorded is closed), and answers with the live sandboxes whose sessions ended for good, which
-- the pool then destroys.

ALTER TABLE drover.sandbox_pools ADD COLUMN silent_after_ms integer NOT NULL DEFAULT 10000;

ALTER TABLE drover.sandboxes DROP CONSTRAINT sandboxes_status_check;
ALTER TABLE drover.sandboxes ADD CONSTRAINT sandboxes_status_check
    CHECK (status IN ('active', 'destroyed', 'reclaimed', 'gone'));
-- Why it ended: destroyed, session_ended, idle, evicted, shutdown, lost (the pool no longer has it).
ALTER TABLE drover.sandboxes ADD COLUMN end_reason text;

-- Whether a pool is live now: up, and heard from within its silent_after.
CREATE FUNCTION drover.pool_is_live(p drover.sandbox_pools) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p.status = 'up' AND p.last_heartbeat_at > clock_timestamp() - p.silent_after_ms * interval '1 millisecond'
$$;

DROP FUNCTION drover.register_pool(text, text, integer);
CREATE FUNCTION drover.register_pool(p_id text, p_address text, p_capacity integer, p_silent_after_ms integer)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, drover AS $$
    INSERT INTO drover.sandbox_pools (id, address, capacity, silent_after_ms) VALUES (p_id, p_address, p_capacity, p_silent_after_ms)
    ON CONFLICT (id) DO UPDATE SET address = excluded.address, capacity = excluded.capacity, status = 'up',
                                   silent_after_ms = excluded.silent_after_ms, last_heartbeat_at = now()
$$;

DROP FUNCTION drover.pool_heartbeat(text, integer, integer, integer);
-- A pool's heartbeat: its load and its live sandboxes. Touches only this pool's rows. Returns the
-- live sandboxes whose session was terminated or deleted: the pool destroys them.
CREATE FUNCTION drover.pool_heartbeat(p_id text, p_running integer, p_live text[])
RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, drover AS $$
BEGIN
    UPDATE drover.sandbox_pools
       SET sandboxes = coalesce(cardinality(p_live), 0), running_calls = p_running, last_heartbeat_at = now(),
           status = CASE WHEN status = 'gone' THEN 'up' ELSE status END
     WHERE id = p_id;
    -- Alive, whatever an update lost during an outage said.
    UPDATE drover.sandboxes SET status = 'active', ended_at = NULL, end_reason = NULL
     WHERE pool_id = p_id AND id = ANY (p_live) AND status <> 'active';
    -- Recorded active, but the pool no longer has it (its end was never recorded). Rows younger than
    -- a few seconds may belong to a provision that raced this heartbeat's list.
    UPDATE drover.sandboxes SET status = 'destroyed', ended_at = now(), end_reason = 'lost'
     WHERE pool_id = p_id AND status = 'active' AND NOT (id = ANY (p_live))
       AND created_at < now() - interval '10 seconds';
    RETURN QUERY
        SELECT s.id FROM drover.sandboxes s
          LEFT JOIN drover.sessions x ON x.id = s.session_id
         WHERE s.pool_id = p_id AND s.id = ANY (p_live) AND s.session_id IS NOT NULL
           AND (x.id IS NULL OR x.status = 'terminated');
END;
$$;

DROP FUNCTION drover.sandbox_ended(text);
-- Records a sandbox's end with its reason; reclaims (idle, evicted) are 'reclaimed'.
CREATE FUNCTION drover.sandbox_ended(p_id text, p_reason text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, drover AS $$
    UPDATE drover.sandboxes
       SET status = CASE WHEN p_reason IN ('idle', 'evicted') THEN 'reclaimed' ELSE 'destroyed' END,
           ended_at = now(), end_reason = p_reason
     WHERE id = p_id AND status = 'active'
$$;

CREATE OR REPLACE FUNCTION drover.pool_stopped(p_id text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, drover AS $$
    UPDATE drover.sandboxes SET status = 'gone', ended_at = now(), end_reason = 'shutdown' WHERE pool_id = p_id AND status = 'active';
    UPDATE drover.sandbox_pools SET status = 'gone', sandboxes = 0, running_calls = 0 WHERE id = p_id;
$$;

REVOKE EXECUTE ON FUNCTION drover.register_pool(text, text, integer, integer), drover.pool_heartbeat(text, integer, text[]),
    drover.sandbox_ended(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drover.register_pool(text, text, integer, integer), drover.pool_heartbeat(text, integer, text[]),
    drover.sandbox_ended(text, text) TO drover_registry;

-- The session's live sandbox now also requires its pool to be live (read, not marked).
CREATE OR REPLACE FUNCTION drover.record_session_sandbox(p_id text, p_pool text, p_session text, p_owner text, p_epoch bigint)
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
     WHERE s.session_id = p_session AND s.status = 'active' AND drover.pool_is_live(p) AND s.lease_epoch IS NOT NULL
       AND s.id <> p_id
     ORDER BY s.created_at LIMIT 1;
    IF FOUND THEN
        RETURN v_existing;
    END IF;
    INSERT INTO drover.sandboxes AS x (id, pool_id, session_id, lease_epoch) VALUES (p_id, p_pool, p_session, p_epoch)
    ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, lease_epoch = excluded.lease_epoch,
                                   status = 'active', ended_at = NULL, end_reason = NULL;
    RETURN p_id;
END;
$$;

-- The operator view shows a silent pool as 'silent' (computed; nobody marks it).
CREATE OR REPLACE VIEW drover.pool_status AS
SELECT p.id, p.address,
       CASE WHEN p.status = 'up' AND NOT drover.pool_is_live(p) THEN 'silent' ELSE p.status END AS status,
       p.capacity,
       (SELECT count(*) FROM drover.sandboxes s WHERE s.pool_id = p.id AND s.status = 'active')::int AS sandboxes,
       p.running_calls,
       extract(epoch FROM clock_timestamp() - p.last_heartbeat_at)::float8 AS heartbeat_age_s,
       p.started_at
  FROM drover.sandbox_pools p;
