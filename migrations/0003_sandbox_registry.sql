-- Sandbox pools and their sandboxes, so that any harness can find a pool by load and re-attach to
-- a session's sandbox after the harness that made it died.

CREATE TABLE drover.sandbox_pools (
    id                text        PRIMARY KEY,
    address           text        NOT NULL,
    capacity          integer     NOT NULL,
    sandboxes         integer     NOT NULL DEFAULT 0,
    running_calls     integer     NOT NULL DEFAULT 0,
    status            text        NOT NULL DEFAULT 'up',
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    CHECK (status IN ('up', 'draining', 'gone'))
) WITH (fillfactor = 80);

CREATE TABLE drover.sandboxes (
    id           text        PRIMARY KEY,
    pool_id      text        NOT NULL REFERENCES drover.sandbox_pools (id),
    session_id   text,
    status       text        NOT NULL DEFAULT 'active',
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    CHECK (status IN ('active', 'destroyed', 'gone'))
);
CREATE INDEX sandboxes_session_idx ON drover.sandboxes (session_id) WHERE status = 'active';
CREATE INDEX sandboxes_pool_idx ON drover.sandboxes (pool_id) WHERE status = 'active';

CREATE FUNCTION drover.register_pool(p_id text, p_address text, p_capacity integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO drover.sandbox_pools (id, address, capacity) VALUES (p_id, p_address, p_capacity)
    ON CONFLICT (id) DO UPDATE SET address = excluded.address, capacity = excluded.capacity, status = 'up',
                                   last_heartbeat_at = now()
$$;

-- Records the pool's load, and marks pools that stopped heartbeating (and their sandboxes) gone.
-- Returns how many pools it marked gone.
CREATE FUNCTION drover.pool_heartbeat(p_id text, p_sandboxes integer, p_running integer, p_gone_after_ms integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_gone integer;
BEGIN
    UPDATE drover.sandbox_pools
       SET sandboxes = p_sandboxes, running_calls = p_running, last_heartbeat_at = now(),
           status = CASE WHEN status = 'gone' THEN 'up' ELSE status END
     WHERE id = p_id;
    WITH gone AS (
        UPDATE drover.sandbox_pools SET status = 'gone'
         WHERE status <> 'gone' AND last_heartbeat_at < now() - p_gone_after_ms * interval '1 millisecond'
        RETURNING id
    ), ended AS (
        UPDATE drover.sandboxes s SET status = 'gone', ended_at = now()
          FROM gone WHERE s.pool_id = gone.id AND s.status = 'active'
    )
    SELECT count(*) INTO v_gone FROM gone;
    RETURN v_gone;
END;
$$;

CREATE FUNCTION drover.pool_stopped(p_id text) RETURNS void LANGUAGE sql AS $$
    UPDATE drover.sandboxes SET status = 'gone', ended_at = now() WHERE pool_id = p_id AND status = 'active';
    UPDATE drover.sandbox_pools SET status = 'gone', sandboxes = 0, running_calls = 0 WHERE id = p_id;
$$;

CREATE FUNCTION drover.record_sandbox(p_id text, p_pool text, p_session text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO drover.sandboxes (id, pool_id, session_id) VALUES (p_id, p_pool, p_session)
    ON CONFLICT (id) DO NOTHING
$$;

CREATE FUNCTION drover.sandbox_ended(p_id text) RETURNS void LANGUAGE sql AS $$
    UPDATE drover.sandboxes SET status = 'destroyed', ended_at = now() WHERE id = p_id AND status = 'active'
$$;
