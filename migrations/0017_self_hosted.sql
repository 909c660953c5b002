-- Self-hosted environments (issue #21): the leased work queue that the SDK's EnvironmentWorker
-- polls. An environment whose config is {"type": "self_hosted"} runs its sandbox tools on the
-- user's own machines: the harness logs each call as agent.tool_use and a worker answers it with
-- user.tool_result. Work items say which sessions need a worker; workers long-poll them with an
-- environment key, acknowledge, heartbeat a lease with optimistic concurrency, and stop them.
--
-- Item states (as the SDK names them): queued (pending once a poll handed it out, pollable again
-- when not acknowledged within reclaim_older_than_ms) → starting (acknowledged) → active (first
-- heartbeat) → stopping (a stop was asked; the next heartbeat tells the worker) → stopped. A
-- lease that expires puts a starting/active item back to queued; a stopping one becomes stopped.
-- At most one live (not stopped) item per session.

ALTER TABLE drover.environments ADD COLUMN kind text NOT NULL DEFAULT 'cloud';
ALTER TABLE drover.environments ADD CONSTRAINT environments_kind_check CHECK (kind IN ('cloud', 'self_hosted'));

-- An environment as the SDK's BetaEnvironment shows it. A cloud config carries `networking` and
-- `packages` in full: Drover's default networking, none, reads as what it is, `limited` with no
-- host and nothing else allowed (the SDK has no `none`); a `limited` one gets its missing flags;
-- `packages` gets every manager's list. What else the config holds (`resources`) follows as stored.
CREATE FUNCTION drover.api_cloud_config(c jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT c || jsonb_build_object(
        'type', 'cloud',
        'networking', CASE WHEN c -> 'networking' ->> 'type' = 'unrestricted' THEN c -> 'networking'
                           ELSE jsonb_build_object('allowed_hosts', '[]'::jsonb, 'allow_mcp_servers', false, 'allow_package_managers', false)
                                || CASE WHEN c -> 'networking' ->> 'type' = 'limited' THEN c -> 'networking' ELSE '{}'::jsonb END
                                || jsonb_build_object('type', 'limited') END,
        'packages', jsonb_build_object('type', 'packages', 'apt', '[]'::jsonb, 'cargo', '[]'::jsonb, 'gem', '[]'::jsonb,
                                       'go', '[]'::jsonb, 'npm', '[]'::jsonb, 'pip', '[]'::jsonb)
                    || CASE WHEN jsonb_typeof(c -> 'packages') = 'object' THEN c -> 'packages' ELSE '{}'::jsonb END)
$$;

CREATE OR REPLACE FUNCTION drover.api_environment_json(e drover.environments) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'environment', 'id', e.id, 'name', e.name, 'description', e.description,
        'config', CASE WHEN e.kind = 'cloud' THEN drover.api_cloud_config(e.config) ELSE jsonb_build_object('type', e.kind) || e.config END,
        'metadata', e.metadata, 'scope', 'organization',
        'created_at', drover.api_time(e.created_at), 'updated_at', drover.api_time(e.updated_at),
        'archived_at', drover.api_time(e.archived_at))
$$;

-- Environment keys: the Bearer credential of one environment's workers (only its SHA-256 kept).
CREATE TABLE drover.environment_keys (
    id             text        PRIMARY KEY,
    environment_id text        NOT NULL REFERENCES drover.environments (id) ON DELETE CASCADE,
    org_id         text        NOT NULL REFERENCES drover.organizations (id),
    key_sha256     bytea       NOT NULL UNIQUE,
    hint           text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

CREATE TABLE drover.work_items (
    id                  text        PRIMARY KEY,
    environment_id      text        NOT NULL REFERENCES drover.environments (id),
    org_id              text        NOT NULL REFERENCES drover.organizations (id),
    session_id          text        NOT NULL REFERENCES drover.sessions (id) ON DELETE CASCADE,
    state               text        NOT NULL DEFAULT 'queued',
    metadata            jsonb       NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- When it last became queued (created, or put back after a lost lease): the queue's order.
    queued_at           timestamptz NOT NULL DEFAULT now(),
    -- The poll that handed it out, and the worker that polled (Anthropic-Worker-ID).
    polled_at           timestamptz,
    worker_id           text,
    acknowledged_at     timestamptz,
    started_at          timestamptz,
    latest_heartbeat_at timestamptz,
    ttl_seconds         integer     NOT NULL DEFAULT 0,
    lease_expires_at    timestamptz,
    stop_requested_at   timestamptz,
    stopped_at          timestamptz,
    -- The SHA-256 of the sessions token of its latest poll: one token per hand-out, dead once the
    -- item is handed out again or stops.
    token_sha256        bytea,
    -- Times it went back to the queue (unacknowledged polls and lost leases).
    reclaims            integer     NOT NULL DEFAULT 0,
    CHECK (state IN ('queued', 'starting', 'active', 'stopping', 'stopped'))
);
CREATE UNIQUE INDEX work_items_live_idx ON drover.work_items (session_id) WHERE state <> 'stopped';
CREATE INDEX work_items_queued_idx ON drover.work_items (environment_id, queued_at, id) WHERE state = 'queued';
CREATE INDEX work_items_leased_idx ON drover.work_items (environment_id, lease_expires_at) WHERE state IN ('starting', 'active', 'stopping');
CREATE INDEX work_items_env_idx ON drover.work_items (environment_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX work_items_token_idx ON drover.work_items (token_sha256) WHERE token_sha256 IS NOT NULL;

-- Who polled an environment, and when (stats' workers_polling).
CREATE TABLE drover.work_pollers (
    environment_id text        NOT NULL REFERENCES drover.environments (id) ON DELETE CASCADE,
    worker_id      text        NOT NULL,
    polled_at      timestamptz NOT NULL,
    PRIMARY KEY (environment_id, worker_id)
);

-- A work item as the SDK's BetaSelfHostedWork shows it (secret: null; only a poll carries one).
CREATE FUNCTION drover.api_work_json(w drover.work_items) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'type', 'work', 'id', w.id, 'environment_id', w.environment_id,
        'data', jsonb_build_object('type', 'session', 'id', w.session_id),
        'state', w.state, 'metadata', w.metadata, 'secret', NULL,
        'created_at', drover.api_time(w.created_at), 'acknowledged_at', drover.api_time(w.acknowledged_at),
        'started_at', drover.api_time(w.started_at), 'latest_heartbeat_at', drover.api_time(w.latest_heartbeat_at),
        'stop_requested_at', drover.api_time(w.stop_requested_at), 'stopped_at', drover.api_time(w.stopped_at))
$$;

-- Queues an item for the session if its environment is self-hosted, it is not terminated, and it
-- has no live item; wakes the environment's long polls.
CREATE FUNCTION drover.work_ensure(p_session text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_env text;
BEGIN
    INSERT INTO drover.work_items (id, environment_id, org_id, session_id)
    SELECT drover.new_id('work'), s.environment_id, s.org_id, s.id
      FROM drover.sessions s JOIN drover.environments e ON e.id = s.environment_id
     WHERE s.id = p_session AND e.kind = 'self_hosted' AND s.status <> 'terminated'
    ON CONFLICT (session_id) WHERE state <> 'stopped' DO NOTHING
    RETURNING environment_id INTO v_env;
    IF v_env IS NOT NULL THEN
        PERFORM pg_notify('drover_work', v_env);
    END IF;
END;
$$;

-- Stops an item: at once when no worker holds it (queued, or force), else asks it to stop
-- (stopping; its next heartbeat tells the worker). A session still at work gets a new item.
CREATE FUNCTION drover.work_stop(p_work text, p_force boolean) RETURNS drover.work_items LANGUAGE plpgsql AS $$
DECLARE
    w drover.work_items;
BEGIN
    UPDATE drover.work_items i
       SET state = CASE WHEN p_force OR i.state IN ('queued', 'starting') THEN 'stopped' ELSE 'stopping' END,
           stop_requested_at = coalesce(i.stop_requested_at, now()),
           stopped_at = CASE WHEN p_force OR i.state IN ('queued', 'starting') THEN now() END,
           lease_expires_at = CASE WHEN p_force OR i.state IN ('queued', 'starting') THEN NULL ELSE i.lease_expires_at END
     WHERE i.id = p_work AND i.state <> 'stopped'
    RETURNING * INTO w;
    IF w.state = 'stopped' THEN
        PERFORM drover.work_requeue_session(w.session_id);
    END IF;
    RETURN w;
END;
$$;

-- After an item stopped: a session that is still at work (queued or running: a turn in progress
-- whose calls may wait for a worker) gets a new item.
CREATE FUNCTION drover.work_requeue_session(p_session text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM drover.sessions s WHERE s.id = p_session AND s.status IN ('queued', 'running')) THEN
        PERFORM drover.work_ensure(p_session);
    END IF;
END;
$$;

-- Leases that ran out: a starting/active item goes back to the queue (its token dies); a stopping
-- one is stopped (and its session, if still at work, gets a new item). Returns how many requeued.
CREATE FUNCTION drover.work_expire(p_env text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_requeued integer;
    v_session text;
BEGIN
    UPDATE drover.work_items i
       SET state = 'queued', queued_at = now(), polled_at = NULL, worker_id = NULL, acknowledged_at = NULL, started_at = NULL,
           latest_heartbeat_at = NULL, lease_expires_at = NULL, token_sha256 = NULL, reclaims = i.reclaims + 1
     WHERE i.environment_id = p_env AND i.state IN ('starting', 'active') AND i.lease_expires_at < now();
    GET DIAGNOSTICS v_requeued = ROW_COUNT;
    FOR v_session IN
        UPDATE drover.work_items i SET state = 'stopped', stopped_at = now(), lease_expires_at = NULL
         WHERE i.environment_id = p_env AND i.state = 'stopping' AND i.lease_expires_at < now()
        RETURNING i.session_id
    LOOP
        PERFORM drover.work_requeue_session(v_session);
    END LOOP;
    RETURN v_requeued;
END;
$$;

-- Hands out the oldest pollable item of the environment (queued, never polled or polled longer
-- than p_reclaim_ms ago without an acknowledgement) to p_worker, with a new sessions token
-- (p_token_sha256). SKIP LOCKED: concurrent polls never wait on each other or get the same item.
CREATE FUNCTION drover.work_poll(p_env text, p_worker text, p_reclaim_ms integer, p_token_sha256 bytea,
                                 OUT item jsonb, OUT reclaimed boolean, OUT expired integer)
LANGUAGE plpgsql AS $$
BEGIN
    expired := drover.work_expire(p_env);
    IF p_worker IS NOT NULL THEN
        -- At most one write a second per worker: stats count the last 30 s.
        INSERT INTO drover.work_pollers (environment_id, worker_id, polled_at) VALUES (p_env, p_worker, now())
        ON CONFLICT (environment_id, worker_id) DO UPDATE SET polled_at = excluded.polled_at
        WHERE drover.work_pollers.polled_at < excluded.polled_at - interval '1 second';
    END IF;
    WITH next AS (
        SELECT i.id, i.polled_at FROM drover.work_items i
         WHERE i.environment_id = p_env AND i.state = 'queued'
           AND (i.polled_at IS NULL OR i.polled_at < now() - p_reclaim_ms * interval '1 millisecond')
         ORDER BY i.queued_at, i.id
         LIMIT 1
           FOR UPDATE SKIP LOCKED
    ), taken AS (
        UPDATE drover.work_items i
           SET polled_at = now(), worker_id = p_worker, token_sha256 = p_token_sha256,
               reclaims = i.reclaims + CASE WHEN next.polled_at IS NULL THEN 0 ELSE 1 END
          FROM next WHERE i.id = next.id
        RETURNING drover.api_work_json(i) AS json, next.polled_at IS NOT NULL AS was_polled
    )
    SELECT t.json, t.was_polled INTO item, reclaimed
      FROM taken t;
END;
$$;

-- The environment's item, locked for the change the caller makes (not_found otherwise).
CREATE FUNCTION drover.work_locked(p_env text, p_work text) RETURNS drover.work_items LANGUAGE plpgsql AS $$
DECLARE
    w drover.work_items;
BEGIN
    SELECT * INTO w FROM drover.work_items WHERE id = p_work AND environment_id = p_env FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('not_found', format('no work item %s', p_work));
    END IF;
    RETURN w;
END;
$$;

-- Acknowledges a handed-out item: queued → starting, out of the queue, its lease running
-- (p_ttl seconds until the first heartbeat). Acknowledging again is harmless.
CREATE FUNCTION drover.work_ack(p_env text, p_work text, p_ttl integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    w drover.work_items;
BEGIN
    w := drover.work_locked(p_env, p_work);
    IF w.state = 'queued' AND w.polled_at IS NOT NULL THEN
        UPDATE drover.work_items SET state = 'starting', acknowledged_at = now(), ttl_seconds = p_ttl,
               lease_expires_at = now() + p_ttl * interval '1 second'
         WHERE id = p_work RETURNING * INTO w;
    ELSIF w.state NOT IN ('starting', 'active') THEN
        PERFORM drover.raise_coded('conflict', format('work item %s is %s%s: only a polled item can be acknowledged', p_work, w.state,
                                                      CASE WHEN w.state = 'queued' THEN ' and not handed out' ELSE '' END));
    END IF;
    RETURN drover.api_work_json(w);
END;
$$;

-- A heartbeat: compare-and-set on the last heartbeat (p_expected: its api_time text, the literal
-- NO_HEARTBEAT for none, NULL to skip the comparison), then extend the lease by the TTL. Returns
-- the lease as the SDK's heartbeat response shows it, and whether the comparison held (false:
-- the API answers 412 heartbeat_precondition_failed with this lease). A stopping or stopped item
-- is not compared and not extended: its state tells the worker to end.
CREATE FUNCTION drover.work_heartbeat(p_env text, p_work text, p_expected text, p_ttl integer,
                                      OUT lease jsonb, OUT matched boolean)
LANGUAGE plpgsql AS $$
DECLARE
    w drover.work_items;
BEGIN
    w := drover.work_locked(p_env, p_work);
    IF w.state IN ('starting', 'active', 'stopping') AND w.lease_expires_at < now() THEN
        -- Ran out before this heartbeat: back to the queue (or stopped), as a poll would have done.
        IF drover.work_expire(p_env) > 0 THEN
            PERFORM pg_notify('drover_work', p_env);
        END IF;
        w := drover.work_locked(p_env, p_work);
    END IF;
    matched := true;
    IF w.state IN ('starting', 'active') THEN
        IF p_expected IS NOT NULL AND p_expected IS DISTINCT FROM coalesce(drover.api_time(w.latest_heartbeat_at), 'NO_HEARTBEAT') THEN
            matched := false;
        ELSE
            UPDATE drover.work_items
               SET state = 'active', started_at = coalesce(started_at, now()), latest_heartbeat_at = clock_timestamp(),
                   ttl_seconds = p_ttl, lease_expires_at = clock_timestamp() + p_ttl * interval '1 second'
             WHERE id = p_work RETURNING * INTO w;
        END IF;
    ELSIF w.state = 'queued' THEN
        matched := false;  -- not this worker's: handed out again, or never acknowledged
    END IF;
    lease := jsonb_build_object(
        'last_heartbeat', CASE WHEN matched THEN coalesce(drover.api_time(w.latest_heartbeat_at), '') ELSE drover.api_time(w.latest_heartbeat_at) END,
        'lease_extended', matched AND w.state = 'active',
        'state', w.state, 'ttl_seconds', w.ttl_seconds);
END;
$$;

-- User-side events, now with user.tool_result: a self-hosted session's worker answering an
-- agent.tool_use (tool_use_id: that event's id). A result for a call that is not pending — not a
-- tool use of this session, or answered already — is refused (invalid_argument), so no call is
-- answered twice whatever the workers do. The row lock on the session (the UPDATE below) orders
-- concurrent results for one call. The result is stored with drover_tool_use_id, the model's id
-- of the call, so the planner and `drover verify` read it like agent.tool_result.
CREATE OR REPLACE FUNCTION drover.send_event(p_session text, p_type text, p_payload text)
RETURNS TABLE (seq bigint, id uuid, created_at timestamptz) LANGUAGE plpgsql AS $$
DECLARE
    v_payload jsonb;
    v_seq bigint;
    v_status text;
    v_code text;
    v_message text;
    v_use drover.events;
    v_hex text;
BEGIN
    IF p_type IS NULL OR p_type NOT IN ('user.message', 'user.interrupt', 'user.tool_confirmation', 'user.custom_tool_result', 'user.tool_result') THEN
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

    IF p_type = 'user.tool_result' THEN
        IF NOT EXISTS (SELECT 1 FROM drover.sessions s JOIN drover.environments e ON e.id = s.environment_id
                        WHERE s.id = p_session AND e.kind = 'self_hosted') THEN
            PERFORM drover.raise_coded('invalid_argument', 'user.tool_result is only accepted by sessions of self_hosted environments');
        END IF;
        v_hex := CASE WHEN v_payload ->> 'tool_use_id' ~ '^sevt_[0-9a-f]{32}$' THEN substr(v_payload ->> 'tool_use_id', 6) END;
        IF v_hex IS NULL THEN
            PERFORM drover.raise_coded('invalid_argument', 'tool_use_id: the id of an agent.tool_use event (sevt_…) is required');
        END IF;
        SELECT * INTO v_use FROM drover.events e
         WHERE e.session_id = p_session AND e.id = v_hex::uuid AND e.type = 'agent.tool_use';
        IF NOT FOUND THEN
            PERFORM drover.raise_coded('invalid_argument', format('tool_use_id: %s is not an agent.tool_use of session %s', v_payload ->> 'tool_use_id', p_session));
        END IF;
        IF EXISTS (SELECT 1 FROM drover.events r
                    WHERE r.session_id = p_session AND r.seq > v_use.seq AND r.type IN ('agent.tool_result', 'user.tool_result')
                      AND coalesce(r.payload ->> 'drover_tool_use_id', r.payload ->> 'tool_use_id') = v_use.payload ->> 'id') THEN
            PERFORM drover.raise_coded('invalid_argument', format('tool_use_id: %s is answered already', v_payload ->> 'tool_use_id'));
        END IF;
        v_payload := v_payload || jsonb_build_object('drover_tool_use_id', v_use.payload -> 'id');
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

-- A session of a self-hosted environment gets an item when it is created and when user input
-- wakes it with no live item; an interrupt stops its item.
CREATE FUNCTION drover.work_on_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM drover.work_ensure(NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER sessions_work AFTER INSERT ON drover.sessions FOR EACH ROW EXECUTE FUNCTION drover.work_on_session();

CREATE FUNCTION drover.work_on_user_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'user.interrupt' THEN
        UPDATE drover.work_items i
           SET state = CASE WHEN i.state IN ('queued', 'starting') THEN 'stopped' ELSE 'stopping' END,
               stop_requested_at = coalesce(i.stop_requested_at, now()),
               stopped_at = CASE WHEN i.state IN ('queued', 'starting') THEN now() END
         WHERE i.session_id = NEW.session_id AND i.state <> 'stopped';
    ELSE
        PERFORM drover.work_ensure(NEW.session_id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_work AFTER INSERT ON drover.events FOR EACH ROW
    WHEN (NEW.type IN ('user.message', 'user.custom_tool_result', 'user.tool_confirmation', 'user.interrupt'))
    EXECUTE FUNCTION drover.work_on_user_event();

-- Operators: every live item and the recently stopped ones, with their lease's age.
CREATE VIEW drover.work_status AS
SELECT i.id, i.environment_id, i.session_id, i.state, i.worker_id,
       (i.state = 'queued' AND i.polled_at IS NOT NULL) AS pending,
       extract(epoch FROM now() - coalesce(i.latest_heartbeat_at, i.acknowledged_at))::float8 AS lease_age_s,
       extract(epoch FROM i.lease_expires_at - now())::float8 AS expires_in_s,
       i.reclaims, i.created_at, i.queued_at
  FROM drover.work_items i
 WHERE i.state <> 'stopped' OR i.stopped_at > now() - interval '10 minutes';

-- Queue depth per self-hosted environment.
CREATE VIEW drover.work_queue_stats AS
SELECT e.id AS environment_id, e.name,
       count(*) FILTER (WHERE i.state = 'queued' AND i.polled_at IS NULL) AS depth,
       count(*) FILTER (WHERE i.state = 'queued' AND i.polled_at IS NOT NULL) AS pending,
       count(*) FILTER (WHERE i.state IN ('starting', 'active')) AS leased,
       count(*) FILTER (WHERE i.state = 'stopping') AS stopping,
       min(i.queued_at) FILTER (WHERE i.state = 'queued') AS oldest_queued_at,
       (SELECT count(*) FROM drover.work_pollers p WHERE p.environment_id = e.id AND p.polled_at > now() - interval '30 seconds') AS workers_polling
  FROM drover.environments e LEFT JOIN drover.work_items i ON i.environment_id = e.id AND i.state <> 'stopped'
 WHERE e.kind = 'self_hosted'
 GROUP BY e.id, e.name;

-- An agent's tools as the SDK's models define them (issue #23's first finding, which the
-- self-hosted worker's strict reading of its session needs): a toolset entry with its configs
-- resolved, one per tool of the toolset, each with its enabled flag and permission policy (its
-- own, else the toolset's default_config, else enabled and always_allow, which is what the
-- harness does); an MCP toolset with its configs as given and a default_config (the same
-- default). Custom tools as stored.
CREATE FUNCTION drover.api_agent_tools(p_tools jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(
        CASE
        WHEN t ->> 'type' = 'agent_toolset_20260401' THEN
            jsonb_build_object(
                'type', t ->> 'type',
                'default_config', jsonb_build_object(
                    'enabled', coalesce((t -> 'default_config' -> 'enabled')::boolean, true),
                    'permission_policy', coalesce(t -> 'default_config' -> 'permission_policy', '{"type": "always_allow"}')),
                'configs', (
                    SELECT jsonb_agg(jsonb_build_object(
                        'type', n.name, 'name', n.name,
                        'enabled', coalesce((c -> 'enabled')::boolean, (t -> 'default_config' -> 'enabled')::boolean, true),
                        'permission_policy', coalesce(c -> 'permission_policy', t -> 'default_config' -> 'permission_policy',
                                                      '{"type": "always_allow"}'))
                        ORDER BY n.ord)
                      FROM unnest(ARRAY['bash', 'edit', 'read', 'write', 'glob', 'grep', 'web_fetch', 'web_search']) WITH ORDINALITY AS n(name, ord)
                      LEFT JOIN LATERAL (
                          SELECT c FROM jsonb_array_elements(coalesce(t -> 'configs', '[]')) c WHERE c ->> 'name' = n.name LIMIT 1
                      ) own ON true))
        WHEN t ->> 'type' = 'mcp_toolset' THEN
            t || jsonb_build_object(
                'configs', coalesce(t -> 'configs', '[]'),
                'default_config', jsonb_build_object(
                    'enabled', coalesce((t -> 'default_config' -> 'enabled')::boolean, true),
                    'permission_policy', coalesce(t -> 'default_config' -> 'permission_policy', '{"type": "always_allow"}')))
        ELSE t
        END ORDER BY o), '[]')
      FROM jsonb_array_elements(coalesce(p_tools, '[]')) WITH ORDINALITY AS x(t, o)
$$;

CREATE OR REPLACE FUNCTION drover.api_agent_json(a drover.agents) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'agent', 'id', a.id, 'version', a.version, 'name', a.name, 'description', a.description,
        'model', coalesce(a.config -> 'model_config', jsonb_build_object('id', a.model, 'speed', 'standard')),
        'system', nullif(a.system_prompt, ''), 'tools', drover.api_agent_tools(a.tools), 'skills', coalesce(a.config -> 'skills', '[]'),
        'mcp_servers', coalesce(a.config -> 'mcp_servers', '[]'), 'metadata', a.metadata, 'multiagent', NULL,
        'execution_identity', jsonb_build_object('type', 'service_account'),
        -- The agent's first version's time; at its creation the row being inserted is not yet
        -- visible to the subquery, and is itself the first (LEAST skips the NULL).
        'created_at', drover.api_time(LEAST(a.created_at, (SELECT min(created_at) FROM drover.agents f WHERE f.id = a.id))),
        'updated_at', drover.api_time(a.created_at), 'archived_at', drover.api_time(a.archived_at))
$$;

-- Events as the SDK's models define them: an agent.tool_result's content is a list of content
-- blocks (the harness stores text, which reads back as one text block; rows already written read
-- the same way). Everything else as 0010 renders it.
CREATE OR REPLACE FUNCTION drover.api_event_json(e drover.events) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT e.payload || jsonb_build_object(
        'id', 'sevt_' || replace(e.id::text, '-', ''), 'type', e.type, 'processed_at', drover.api_time(e.created_at),
        'drover_lease_epoch', e.lease_epoch)
        -- The model's tool-use id, which agent.tool_result's tool_use_id names (the event id replaced it).
        || CASE WHEN e.type IN ('agent.tool_use', 'agent.custom_tool_use') THEN jsonb_build_object('drover_tool_use_id', e.payload -> 'id')
                ELSE '{}'::jsonb END
        || CASE WHEN e.type = 'agent.tool_result' AND jsonb_typeof(e.payload -> 'content') = 'string'
                THEN jsonb_build_object('content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', e.payload -> 'content')))
                ELSE '{}'::jsonb END
$$;
