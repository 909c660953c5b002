-- Deployments, their runs, the scheduler's lease, session budgets and the price table (issue #26).
--
-- A deployment binds an agent version to an environment, resources, vaults, initial events, a
-- budget and an optional cron schedule. Each fire creates a session from it and records a run in
-- the same transaction; a run is unique per (deployment, scheduled time), so a due time fires
-- exactly once whichever process and however many processes try. Every change is kept as a
-- version (deployment_versions), like an agent's.

CREATE TABLE drover.deployments (
    id             text        PRIMARY KEY,
    org_id         text        NOT NULL REFERENCES drover.organizations (id),
    version        integer     NOT NULL DEFAULT 1,
    name           text        NOT NULL,
    description    text,
    agent_id       text        NOT NULL,
    agent_version  integer     NOT NULL,
    environment_id text        NOT NULL,
    initial_events jsonb       NOT NULL,
    -- As the API echoes them (write-only repository tokens left out); the tokens, when any, are
    -- sealed together in `secrets` (a JSON array of {index, token}) with the vault key.
    resources      jsonb       NOT NULL DEFAULT '[]',
    secrets        bytea,
    key_id         text,
    vault_ids      text[]      NOT NULL DEFAULT '{}',
    metadata       jsonb       NOT NULL DEFAULT '{}',
    budget         jsonb,
    -- {type: cron, expression, timezone}, or NULL for manual runs only.
    schedule       jsonb,
    -- The next scheduled time not yet fired (UTC), kept by whoever fires; NULL without a schedule
    -- or once archived. A paused deployment keeps it moving (its fires are skipped, not owed).
    next_fire_at   timestamptz,
    -- The next five scheduled times (what `schedule.upcoming_runs_at` shows), kept with next_fire_at.
    upcoming_at    timestamptz[] NOT NULL DEFAULT '{}',
    last_run_at    timestamptz,
    paused_reason  jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    archived_at    timestamptz,
    FOREIGN KEY (agent_id, agent_version) REFERENCES drover.agents (id, version),
    CHECK (schedule IS NOT NULL OR next_fire_at IS NULL)
);
CREATE INDEX deployments_org_idx ON drover.deployments (org_id, created_at DESC, id);
CREATE INDEX deployments_due_idx ON drover.deployments (next_fire_at) WHERE next_fire_at IS NOT NULL;

CREATE TABLE drover.deployment_versions (
    deployment_id text        NOT NULL REFERENCES drover.deployments (id) ON DELETE CASCADE,
    version       integer     NOT NULL,
    snapshot      jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, version)
);

CREATE TABLE drover.deployment_runs (
    id            text        PRIMARY KEY,
    org_id        text        NOT NULL,
    deployment_id text        NOT NULL REFERENCES drover.deployments (id) ON DELETE CASCADE,
    agent_id      text        NOT NULL,
    agent_version integer     NOT NULL,
    trigger_type  text        NOT NULL CHECK (trigger_type IN ('schedule', 'manual')),
    scheduled_at  timestamptz,
    session_id    text,
    error         jsonb,
    -- How the run's session's first turn ended (succeeded: end_turn; failed: anything else), for
    -- the deployment_run.succeeded / .failed webhooks; NULL until then.
    outcome       text        CHECK (outcome IN ('succeeded', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((session_id IS NULL) <> (error IS NULL)),
    CHECK ((trigger_type = 'schedule') = (scheduled_at IS NOT NULL)),
    UNIQUE (deployment_id, scheduled_at)
);
CREATE INDEX deployment_runs_org_idx ON drover.deployment_runs (org_id, created_at DESC, id);
CREATE INDEX deployment_runs_session_idx ON drover.deployment_runs (session_id) WHERE session_id IS NOT NULL;

-- Who evaluates schedules: one lease, taken by whichever `drover api` process finds it free or
-- expired, fenced by its epoch (a holder whose lease moved fires nothing more). Exactly-once does
-- not rest on it (the runs' unique key does); it keeps the replicas from doing the work N times.
CREATE TABLE drover.scheduler_leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    epoch      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Takes or renews lease `p_name` for `p_holder` for `p_ttl` seconds: its epoch, or NULL when
-- another holder's lease has not expired.
CREATE FUNCTION drover.scheduler_lease(p_name text, p_holder text, p_ttl double precision) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_epoch bigint;
BEGIN
    INSERT INTO drover.scheduler_leases AS l (name, holder, epoch, expires_at)
    VALUES (p_name, p_holder, 1, clock_timestamp() + make_interval(secs => p_ttl))
    ON CONFLICT (name) DO UPDATE
        SET holder = p_holder,
            epoch = CASE WHEN l.holder = p_holder AND l.expires_at > clock_timestamp() THEN l.epoch ELSE l.epoch + 1 END,
            expires_at = clock_timestamp() + make_interval(secs => p_ttl)
        WHERE l.holder = p_holder OR l.expires_at <= clock_timestamp()
    RETURNING epoch INTO v_epoch;
    RETURN v_epoch;
END;
$$;

-- Whether `p_holder` still holds lease `p_name` at `p_epoch`, locking it until the caller's
-- transaction ends (a successor waits for a fire in flight, then sees its effects).
CREATE FUNCTION drover.scheduler_lease_held(p_name text, p_holder text, p_epoch bigint) RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM drover.scheduler_leases
                    WHERE name = p_name AND holder = p_holder AND epoch = p_epoch AND expires_at > clock_timestamp()
                      FOR UPDATE)
$$;

-- Sessions made by a deployment say so; a session may carry a budget (BetaManagedAgentsBudgetLimit).
ALTER TABLE drover.sessions ADD COLUMN deployment_id text, ADD COLUMN budget jsonb;
CREATE INDEX sessions_deployment_idx ON drover.sessions (deployment_id, created_at DESC, id) WHERE deployment_id IS NOT NULL;

-- The operator's list prices, per model, in US dollars per million tokens (`drover prices set`,
-- or SQL). A budget is measured against them; a model without a row cannot be budgeted.
CREATE TABLE drover.model_prices (
    model                text          PRIMARY KEY,
    input_per_mtok       numeric(12,4) NOT NULL CHECK (input_per_mtok >= 0),
    output_per_mtok      numeric(12,4) NOT NULL CHECK (output_per_mtok >= 0),
    cache_read_per_mtok  numeric(12,4) NOT NULL DEFAULT 0 CHECK (cache_read_per_mtok >= 0),
    cache_write_per_mtok numeric(12,4) NOT NULL DEFAULT 0 CHECK (cache_write_per_mtok >= 0),
    updated_at           timestamptz   NOT NULL DEFAULT now()
);

-- A session's list cost in cents (whole, rounded up: a cap fires at or before the charge), from
-- its usage counters and its agent's model's price; NULL when the model has no price.
CREATE FUNCTION drover.session_list_cost_cents(p_model text, p_input bigint, p_output bigint, p_cache_read bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT ceil((p_input * p.input_per_mtok + p_output * p.output_per_mtok + p_cache_read * p.cache_read_per_mtok) / 10000.0)::bigint
      FROM drover.model_prices p WHERE p.model = p_model
$$;

-- As 0026's, with the session's `deployment_id`, `budget`, and `usage.list_cost` where its model
-- has a price.
CREATE OR REPLACE FUNCTION drover.api_session_json(s drover.sessions) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_agent jsonb;
    v_model text;
BEGIN
    SELECT (drover.api_agent_json(a) - 'created_at' - 'updated_at' - 'archived_at' - 'metadata')
           || jsonb_build_object('id', s.agent_id, 'version', s.agent_version), a.model
      INTO v_agent, v_model
      FROM drover.agents a
     WHERE a.id = coalesce(s.run_agent_id, s.agent_id) AND a.version = coalesce(s.run_agent_version, s.agent_version);
    RETURN (SELECT jsonb_build_object(
        'type', 'session', 'id', s.id, 'title', s.title, 'metadata', s.metadata, 'environment_id', s.environment_id,
        'status', CASE s.status WHEN 'queued' THEN 'running' ELSE s.status END,
        'agent', v_agent,
        'resources', (SELECT coalesce(jsonb_agg(drover.api_session_resource_json(r) ORDER BY r.created_at, r.id), '[]')
                        FROM drover.session_resources r WHERE r.session_id = s.id),
        'vault_ids', to_jsonb(s.vault_ids), 'outcome_evaluations', '[]'::jsonb,
        'deployment_id', s.deployment_id, 'budget', s.budget,
        'stats', jsonb_build_object('duration_seconds', extract(epoch FROM now() - s.created_at), 'active_seconds', u.active_seconds),
        'usage', jsonb_strip_nulls(jsonb_build_object(
                     'active_seconds', u.active_seconds, 'input_tokens', u.input_tokens, 'output_tokens', u.output_tokens,
                     'cache_read_input_tokens', u.cache_read_input_tokens,
                     'list_cost', (SELECT jsonb_build_object('amount', c::text, 'currency', 'USD')
                                     FROM drover.session_list_cost_cents(v_model, u.input_tokens, u.output_tokens,
                                                                          u.cache_read_input_tokens) c WHERE c IS NOT NULL))),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at),
        'archived_at', drover.api_time(s.archived_at))
      FROM drover.api_session_usage(s.id, s.last_seq) u);
END;
$$;

CREATE FUNCTION drover.api_deployment_json(d drover.deployments) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'deployment', 'id', d.id, 'name', d.name, 'description', d.description,
        'agent', jsonb_build_object('type', 'agent', 'id', d.agent_id, 'version', d.agent_version),
        'environment_id', d.environment_id, 'initial_events', d.initial_events, 'resources', d.resources,
        'vault_ids', to_jsonb(d.vault_ids), 'metadata', d.metadata, 'budget', d.budget,
        'status', CASE WHEN d.paused_reason IS NULL THEN 'active' ELSE 'paused' END, 'paused_reason', d.paused_reason,
        'schedule', CASE WHEN d.schedule IS NULL THEN NULL
                         ELSE d.schedule || jsonb_build_object(
                             'last_run_at', drover.api_time(d.last_run_at),
                             'upcoming_runs_at', CASE WHEN d.archived_at IS NOT NULL THEN '[]'::jsonb
                                                      ELSE (SELECT coalesce(jsonb_agg(drover.api_time(t) ORDER BY t), '[]')
                                                              FROM unnest(d.upcoming_at) t) END) END,
        'created_at', drover.api_time(d.created_at), 'updated_at', drover.api_time(d.updated_at),
        'archived_at', drover.api_time(d.archived_at));
END;
$$;

CREATE FUNCTION drover.api_deployment_run_json(r drover.deployment_runs) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'deployment_run', 'id', r.id, 'deployment_id', r.deployment_id,
        'agent', jsonb_build_object('type', 'agent', 'id', r.agent_id, 'version', r.agent_version),
        'session_id', r.session_id, 'error', r.error,
        'trigger_context', CASE r.trigger_type WHEN 'schedule'
                               THEN jsonb_build_object('type', 'schedule', 'scheduled_at', drover.api_time(r.scheduled_at))
                               ELSE jsonb_build_object('type', 'manual') END,
        'created_at', drover.api_time(r.created_at));
END;
$$;
