-- Provisions waiting in line at a pool whose every sandbox is running a call (issue #22): each
-- pool reports how many in its heartbeat; operators see it in drover.pool_status, and harnesses
-- order pools by it (a full pool with a long line is tried after one with a short one).
ALTER TABLE drover.sandbox_pools ADD COLUMN waiting integer NOT NULL DEFAULT 0;

-- The heartbeat with the line's length; the three-argument form stays for pools not yet upgraded.
CREATE FUNCTION drover.pool_heartbeat(p_id text, p_running integer, p_live text[], p_waiting integer)
RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, drover AS $$
BEGIN
    UPDATE drover.sandbox_pools SET waiting = greatest(p_waiting, 0) WHERE id = p_id;
    RETURN QUERY SELECT drover.pool_heartbeat(p_id, p_running, p_live);
END;
$$;
REVOKE EXECUTE ON FUNCTION drover.pool_heartbeat(text, integer, text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drover.pool_heartbeat(text, integer, text[], integer) TO drover_registry;

CREATE OR REPLACE FUNCTION drover.pool_stopped(p_id text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, drover AS $$
    UPDATE drover.sandboxes SET status = 'gone', ended_at = now(), end_reason = 'shutdown' WHERE pool_id = p_id AND status = 'active';
    UPDATE drover.sandbox_pools SET status = 'gone', sandboxes = 0, running_calls = 0, waiting = 0 WHERE id = p_id;
$$;

-- The operator view gains the line's length (a new last column: the view is replaced, not changed).
CREATE OR REPLACE VIEW drover.pool_status AS
SELECT p.id, p.address,
       CASE WHEN p.status = 'up' AND NOT drover.pool_is_live(p) THEN 'silent' ELSE p.status END AS status,
       p.capacity,
       (SELECT count(*) FROM drover.sandboxes s WHERE s.pool_id = p.id AND s.status = 'active')::int AS sandboxes,
       p.running_calls,
       extract(epoch FROM clock_timestamp() - p.last_heartbeat_at)::float8 AS heartbeat_age_s,
       p.started_at,
       CASE WHEN drover.pool_is_live(p) THEN p.waiting ELSE 0 END AS waiting
  FROM drover.sandbox_pools p;
