-- Drover's tables: agents, environments, sessions (the queue), events (the log), harnesses.
CREATE SCHEMA IF NOT EXISTS drover;

-- Agent configuration is versioned: a session pins the version it was created with.
CREATE TABLE drover.agents (
    id            text        NOT NULL,
    version       integer     NOT NULL,
    name          text        NOT NULL,
    model         text        NOT NULL,
    system_prompt text        NOT NULL DEFAULT '',
    tools         jsonb       NOT NULL DEFAULT '[]',
    config        jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, version),
    CHECK (version >= 1),
    CHECK (jsonb_typeof(tools) = 'array'),
    CHECK (jsonb_typeof(config) = 'object')
);

-- Sandbox configuration: resources and networking for the sessions that use it.
CREATE TABLE drover.environments (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    config     jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (jsonb_typeof(config) = 'object')
);

-- The queue. One row per session; the lease columns say who may write to its log.
-- Hot updates (last_seq on every append, the heartbeat) touch only unindexed columns, so they
-- are HOT updates; the fill factor leaves room on each page for them.
CREATE TABLE drover.sessions (
    id                text        PRIMARY KEY,
    agent_id          text        NOT NULL,
    agent_version     integer     NOT NULL,
    environment_id    text        NOT NULL REFERENCES drover.environments (id),
    status            text        NOT NULL DEFAULT 'idle',
    priority          integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    queued_at         timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    last_seq          bigint      NOT NULL DEFAULT 0,
    last_user_seq     bigint      NOT NULL DEFAULT 0,
    lease_owner       text,
    lease_epoch       bigint      NOT NULL DEFAULT 0,
    lease_acquired_at timestamptz,
    lease_expires_at  timestamptz,
    last_heartbeat_at timestamptz,
    FOREIGN KEY (agent_id, agent_version) REFERENCES drover.agents (id, version),
    CHECK (status IN ('idle', 'queued', 'running', 'terminated')),
    CHECK ((status = 'running') = (lease_owner IS NOT NULL))
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- The claim query reads runnable sessions in (priority desc, queued_at) order; each status has
-- its own partial index so that neither scan walks past rows of the other kind.
CREATE INDEX sessions_queued_idx ON drover.sessions (priority DESC, queued_at) WHERE status = 'queued';
CREATE INDEX sessions_running_idx ON drover.sessions (lease_expires_at) WHERE status = 'running';
CREATE INDEX sessions_status_idx ON drover.sessions (status);

-- The log. Append-only: UPDATE, DELETE and TRUNCATE are refused by triggers below.
CREATE TABLE drover.events (
    session_id  text        NOT NULL REFERENCES drover.sessions (id),
    seq         bigint      NOT NULL,
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    type        text        NOT NULL,
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    lease_epoch bigint,
    PRIMARY KEY (session_id, seq),
    CHECK (seq >= 1),
    CHECK (jsonb_typeof(payload) = 'object')
);
CREATE UNIQUE INDEX events_id_idx ON drover.events (id);

CREATE FUNCTION drover.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'drover.events is append-only: % refused', TG_OP USING ERRCODE = 'DR010';
END;
$$;

CREATE TRIGGER events_append_only_rows BEFORE UPDATE OR DELETE ON drover.events
    FOR EACH ROW EXECUTE FUNCTION drover.refuse_event_change();
CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON drover.events
    FOR EACH STATEMENT EXECUTE FUNCTION drover.refuse_event_change();

-- Every lease ever granted (written by each claim), so that `drover verify` can check that each
-- event was written under the epoch in force at the time, and operators can see who held what when.
CREATE TABLE drover.lease_history (
    session_id  text        NOT NULL REFERENCES drover.sessions (id),
    epoch       bigint      NOT NULL,
    owner       text        NOT NULL,
    acquired_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, epoch)
);

-- Harness processes, for operators. A harness's id is new at every process start.
CREATE TABLE drover.harnesses (
    id                text        PRIMARY KEY,
    host              text        NOT NULL,
    pid               integer     NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at        timestamptz
) WITH (fillfactor = 80);
