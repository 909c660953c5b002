-- Tenancy for `drover api`: organisations, API keys (stored hashed), and the fields Managed
-- Agents' resources carry (metadata, descriptions, titles, archiving). Every agent, environment
-- and session belongs to one organisation; rows made before this migration (and by the CLI and
-- SQL functions, which act as the operator) belong to `org_default`.

CREATE TABLE drover.organizations (
    id         text        PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO drover.organizations (id, name) VALUES ('org_default', 'default');

-- An API key is shown once, at creation; only its SHA-256 is kept. `operator` keys may also use
-- the fleet endpoints.
CREATE TABLE drover.api_keys (
    id         text        PRIMARY KEY,
    org_id     text        NOT NULL REFERENCES drover.organizations (id),
    key_sha256 bytea       NOT NULL UNIQUE,
    hint       text        NOT NULL,
    operator   boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

ALTER TABLE drover.agents
    ADD COLUMN org_id      text        NOT NULL DEFAULT 'org_default' REFERENCES drover.organizations (id),
    ADD COLUMN description text,
    ADD COLUMN metadata    jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN archived_at timestamptz;
CREATE INDEX agents_org_idx ON drover.agents (org_id, created_at DESC, id) WHERE version = 1;

ALTER TABLE drover.environments
    ADD COLUMN org_id      text        NOT NULL DEFAULT 'org_default' REFERENCES drover.organizations (id),
    ADD COLUMN description text,
    ADD COLUMN metadata    jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN archived_at timestamptz,
    ADD COLUMN updated_at  timestamptz NOT NULL DEFAULT now();
CREATE INDEX environments_org_idx ON drover.environments (org_id, created_at DESC, id);

-- The org column is set once and never updated, so the queue's hot updates stay HOT.
ALTER TABLE drover.sessions
    ADD COLUMN org_id      text        NOT NULL DEFAULT 'org_default',
    ADD COLUMN title       text,
    ADD COLUMN metadata    jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN archived_at timestamptz;
CREATE INDEX sessions_org_idx ON drover.sessions (org_id, created_at DESC, id);

-- `conflict` (DR011): a precondition failed (an update named a version that is no longer current).
CREATE OR REPLACE FUNCTION drover.raise_coded(p_code text, p_message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: %', p_code, p_message USING ERRCODE = CASE p_code
        WHEN 'lease_lost' THEN 'DR001' WHEN 'not_found' THEN 'DR002' WHEN 'invalid_payload' THEN 'DR003'
        WHEN 'payload_too_large' THEN 'DR004' WHEN 'unknown_event_type' THEN 'DR005'
        WHEN 'session_terminated' THEN 'DR006' WHEN 'invalid_argument' THEN 'DR007' WHEN 'conflict' THEN 'DR011'
        ELSE 'DR000' END;
END;
$$;

-- Deleting a session is the one path by which events are ever deleted: the append-only trigger
-- lets a row go only when this function, in this transaction, named its session.
CREATE OR REPLACE FUNCTION drover.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('drover.deleting_session', true) = OLD.session_id THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'drover.events is append-only: % refused', TG_OP USING ERRCODE = 'DR010';
END;
$$;

-- Deletes a session with its log and lease history. A running session is refused (interrupt it
-- first, as Managed Agents requires). Returns whether there was one.
CREATE FUNCTION drover.delete_session(p_session text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM drover.sessions WHERE id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_status = 'running' THEN
        PERFORM drover.raise_coded('invalid_argument', format('session %s is running: interrupt it, then delete it', p_session));
    END IF;
    PERFORM set_config('drover.deleting_session', p_session, true);
    DELETE FROM drover.events WHERE session_id = p_session;
    DELETE FROM drover.lease_history WHERE session_id = p_session;
    DELETE FROM drover.sessions WHERE id = p_session;
    PERFORM set_config('drover.deleting_session', '', true);
    RETURN true;
END;
$$;

-- Managed Agents' JSON for each resource, rendered where the rows are, so that every replica of
-- `drover api` answers alike and passes it through.

CREATE FUNCTION drover.api_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- An agent version as Managed Agents shows it. `created_at` is the agent's (version 1),
-- `updated_at` this version's.
CREATE FUNCTION drover.api_agent_json(a drover.agents) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'agent', 'id', a.id, 'version', a.version, 'name', a.name, 'description', a.description,
        'model', coalesce(a.config -> 'model_config', jsonb_build_object('id', a.model, 'speed', 'standard')),
        'system', nullif(a.system_prompt, ''), 'tools', a.tools, 'skills', coalesce(a.config -> 'skills', '[]'),
        'mcp_servers', coalesce(a.config -> 'mcp_servers', '[]'), 'metadata', a.metadata, 'multiagent', NULL,
        'execution_identity', jsonb_build_object('type', 'service_account'),
        'created_at', drover.api_time((SELECT min(created_at) FROM drover.agents f WHERE f.id = a.id)),
        'updated_at', drover.api_time(a.created_at), 'archived_at', drover.api_time(a.archived_at))
$$;

CREATE FUNCTION drover.api_environment_json(e drover.environments) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'environment', 'id', e.id, 'name', e.name, 'description', e.description,
        'config', jsonb_build_object('type', 'cloud') || e.config, 'metadata', e.metadata, 'scope', 'organization',
        'created_at', drover.api_time(e.created_at), 'updated_at', drover.api_time(e.updated_at),
        'archived_at', drover.api_time(e.archived_at))
$$;

-- Seconds a session has run: from each session.status_running to the next status event (now,
-- while it runs). A takeover's second status_running starts a new stretch.
CREATE FUNCTION drover.api_active_seconds(p_session text) RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(extract(epoch FROM coalesce(t.next_at, now()) - t.created_at)), 0)::float8
      FROM (SELECT e.type, e.created_at, lead(e.created_at) OVER (ORDER BY e.seq) AS next_at
              FROM drover.events e
             WHERE e.session_id = p_session AND e.type IN ('session.status_running', 'session.status_idle')) t
     WHERE t.type = 'session.status_running'
$$;

-- A session with its agent snapshot (the version it pinned), stats and usage from its log.
-- Queued counts as running: work is pending on it.
CREATE FUNCTION drover.api_session_json(s drover.sessions) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'session', 'id', s.id, 'title', s.title, 'metadata', s.metadata, 'environment_id', s.environment_id,
        'status', CASE s.status WHEN 'queued' THEN 'running' ELSE s.status END,
        'agent', (SELECT (drover.api_agent_json(a) - 'created_at' - 'updated_at' - 'archived_at' - 'metadata')
                    FROM drover.agents a WHERE a.id = s.agent_id AND a.version = s.agent_version),
        'resources', '[]'::jsonb, 'vault_ids', '[]'::jsonb, 'outcome_evaluations', '[]'::jsonb,
        'stats', jsonb_build_object('duration_seconds', extract(epoch FROM now() - s.created_at),
                                    'active_seconds', drover.api_active_seconds(s.id)),
        'usage', (SELECT jsonb_build_object(
                      'active_seconds', drover.api_active_seconds(s.id),
                      'input_tokens', coalesce(sum((coalesce(e.payload -> 'model_usage', e.payload -> 'usage') ->> 'input_tokens')::bigint), 0),
                      'output_tokens', coalesce(sum((coalesce(e.payload -> 'model_usage', e.payload -> 'usage') ->> 'output_tokens')::bigint), 0),
                      'cache_read_input_tokens', coalesce(sum((coalesce(e.payload -> 'model_usage', e.payload -> 'usage') ->> 'cache_read_input_tokens')::bigint), 0))
                    FROM drover.events e WHERE e.session_id = s.id AND e.type = 'span.model_request_end'),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at),
        'archived_at', drover.api_time(s.archived_at))
$$;

-- An event: its payload's fields, with its id (sevt_ and the uuid's hex), type and processed_at;
-- beyond Managed Agents, the lease epoch that wrote it (null for user events), so that a trace can
-- show a takeover.
CREATE FUNCTION drover.api_event_json(e drover.events) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT e.payload || jsonb_build_object(
        'id', 'sevt_' || replace(e.id::text, '-', ''), 'type', e.type, 'processed_at', drover.api_time(e.created_at),
        'drover_lease_epoch', e.lease_epoch)
        -- The model's tool-use id, which agent.tool_result's tool_use_id names (the event id replaced it).
        || CASE WHEN e.type IN ('agent.tool_use', 'agent.custom_tool_use') THEN jsonb_build_object('drover_tool_use_id', e.payload -> 'id')
                ELSE '{}'::jsonb END
$$;

-- A new version of an agent, if p_version is still the current one (else `conflict`). The patch
-- carries Managed Agents' fields; absent ones keep their value, `metadata` keys set to null are
-- removed. An update that changes nothing returns the current version unchanged.
CREATE FUNCTION drover.api_update_agent(p_org text, p_id text, p_version integer, p_patch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    a drover.agents;
    v_next drover.agents;
BEGIN
    SELECT * INTO a FROM drover.agents WHERE id = p_id AND org_id = p_org ORDER BY version DESC LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('not_found', format('no agent %s', p_id));
    END IF;
    IF p_version IS DISTINCT FROM a.version THEN
        PERFORM drover.raise_coded('conflict', format('agent %s is at version %s, not %s: retrieve it and apply the change again',
                                                      p_id, a.version, coalesce(p_version::text, 'none')));
    END IF;
    v_next := a;
    v_next.version := a.version + 1;
    v_next.created_at := now();
    IF p_patch ? 'name' THEN v_next.name := p_patch ->> 'name'; END IF;
    IF p_patch ? 'description' THEN v_next.description := p_patch ->> 'description'; END IF;
    IF p_patch ? 'system' THEN v_next.system_prompt := coalesce(p_patch ->> 'system', ''); END IF;
    IF p_patch ? 'tools' THEN v_next.tools := p_patch -> 'tools'; END IF;
    IF p_patch ? 'model' THEN
        v_next.model := CASE jsonb_typeof(p_patch -> 'model') WHEN 'string' THEN p_patch ->> 'model' ELSE p_patch -> 'model' ->> 'id' END;
        v_next.config := v_next.config || jsonb_build_object('model_config',
            CASE jsonb_typeof(p_patch -> 'model') WHEN 'string' THEN jsonb_build_object('id', p_patch ->> 'model', 'speed', 'standard')
                 ELSE p_patch -> 'model' END);
    END IF;
    IF p_patch ? 'metadata' THEN
        v_next.metadata := jsonb_strip_nulls(a.metadata || p_patch -> 'metadata');
    END IF;
    IF v_next.name IS NULL OR v_next.name = '' OR v_next.model IS NULL OR v_next.model = '' THEN
        PERFORM drover.raise_coded('invalid_argument', 'an agent needs a name and a model');
    END IF;
    IF (v_next.name, v_next.description, v_next.system_prompt, v_next.tools, v_next.model, v_next.config, v_next.metadata)
       IS NOT DISTINCT FROM (a.name, a.description, a.system_prompt, a.tools, a.model, a.config, a.metadata) THEN
        RETURN drover.api_agent_json(a);
    END IF;
    INSERT INTO drover.agents SELECT v_next.*;
    RETURN drover.api_agent_json(v_next);
END;
$$;
