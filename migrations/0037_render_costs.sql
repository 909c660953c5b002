-- What an API request costs Postgres (issues #22 and #27): the two renders later migrations had
-- re-created as SQL-language functions, which Postgres parses and plans again in every statement
-- that calls them, are PL/pgSQL again (as 0018 made them), and an agent version's render, which
-- depends on nothing that changes after the version is written except archived_at, is kept on its
-- row instead of being built again by every session render (2/3 of a retrieve's time).
--
-- Measured with pgbench, one client, prepared, on a bench database: one event render
-- 7,296/s → 14,285/s; the agent part of a session render 0.27 ms → a column read.

CREATE OR REPLACE FUNCTION drover.api_event_json(e drover.events) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN e.payload || jsonb_build_object(
        'id', 'sevt_' || replace(e.id::text, '-', ''), 'type', e.type, 'processed_at', drover.api_time(e.created_at),
        'drover_lease_epoch', e.lease_epoch)
        -- The model's tool-use id, which agent.tool_result's tool_use_id names (the event id replaced it).
        || CASE WHEN e.type IN ('agent.tool_use', 'agent.custom_tool_use') THEN jsonb_build_object('drover_tool_use_id', e.payload -> 'id')
                ELSE '{}'::jsonb END
        || CASE WHEN e.type = 'agent.tool_result' AND jsonb_typeof(e.payload -> 'content') = 'string'
                THEN jsonb_build_object('content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', e.payload -> 'content')))
                ELSE '{}'::jsonb END
        || CASE WHEN e.session_id LIKE 'sthr\_%' THEN jsonb_build_object('session_thread_id', e.session_id) ELSE '{}'::jsonb END
        || CASE WHEN e.type = 'session.error' AND jsonb_typeof(e.payload -> 'error') = 'object'
                     AND NOT coalesce(e.payload #>> '{error,type}', '') = ANY (ARRAY[
                         'unknown_error', 'model_overloaded_error', 'model_rate_limited_error', 'model_request_failed_error',
                         'mcp_connection_failed_error', 'mcp_authentication_failed_error', 'billing_error',
                         'credential_host_unreachable_error', 'tool_use_limit_reached_error', 'compaction_limit_reached_error',
                         'repository_authentication_error', 'repository_forbidden_error', 'repository_not_found_error',
                         'repository_checkout_error', 'repository_clone_error'])
                THEN jsonb_build_object('error', (e.payload -> 'error') || jsonb_build_object(
                    'type', CASE e.payload #>> '{error,type}'
                                WHEN 'model_overloaded' THEN 'model_overloaded_error'
                                WHEN 'model_rate_limited' THEN 'model_rate_limited_error'
                                ELSE CASE WHEN e.payload #>> '{error,type}' LIKE 'model\_%' THEN 'model_request_failed_error' ELSE 'unknown_error' END
                            END,
                    'drover_error_type', e.payload #>> '{error,type}',
                    'message', coalesce(e.payload #>> '{error,message}', ''),
                    'retry_status', coalesce(e.payload #> '{error,retry_status}', '{"type": "terminal"}'::jsonb)))
                ELSE '{}'::jsonb END;
END;
$$;

-- An agent version as the API renders it, but for archived_at (the one field that changes after
-- the version is written). A migration that changes this render must refresh the kept renders:
-- UPDATE drover.agents SET rendered = NULL (the trigger below renders each row again).
CREATE FUNCTION drover.api_agent_render(a drover.agents) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
    SELECT jsonb_build_object(
        'type', 'agent', 'id', a.id, 'version', a.version, 'name', a.name, 'description', a.description,
        'model', coalesce(a.config -> 'model_config', jsonb_build_object('id', a.model, 'speed', 'standard')),
        'system', nullif(a.system_prompt, ''), 'tools', drover.api_agent_tools(a.tools), 'skills', coalesce(a.config -> 'skills', '[]'),
        'mcp_servers', coalesce(a.config -> 'mcp_servers', '[]'), 'metadata', a.metadata, 'multiagent', a.config -> 'multiagent',
        'execution_identity', jsonb_build_object('type', 'service_account'),
        -- The agent's first version's time; at its creation the row being inserted is not yet
        -- visible to the subquery, and is itself the first (LEAST skips the NULL).
        'created_at', drover.api_time(LEAST(a.created_at, (SELECT min(created_at) FROM drover.agents f WHERE f.id = a.id))),
        'updated_at', drover.api_time(a.created_at), 'archived_at', drover.api_time(a.archived_at))
    ) - 'archived_at';
END;
$$;

ALTER TABLE drover.agents ADD COLUMN rendered jsonb;

CREATE FUNCTION drover.agents_keep_render() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.rendered := drover.api_agent_render(NEW);
    RETURN NEW;
END;
$$;

CREATE TRIGGER agents_keep_render BEFORE INSERT OR UPDATE ON drover.agents
    FOR EACH ROW EXECUTE FUNCTION drover.agents_keep_render();

UPDATE drover.agents SET rendered = NULL;

CREATE OR REPLACE FUNCTION drover.api_agent_json(a drover.agents) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce(a.rendered, drover.api_agent_render(a)) || jsonb_build_object('archived_at', drover.api_time(a.archived_at));
END;
$$;

-- A new version's answer is rendered from the row as written (with its own kept render).
CREATE OR REPLACE FUNCTION drover.api_update_agent(p_org text, p_id text, p_version integer, p_patch jsonb) RETURNS jsonb
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
    IF p_patch ? 'skills' THEN
        v_next.config := v_next.config || jsonb_build_object('skills', coalesce(nullif(p_patch -> 'skills', 'null'::jsonb), '[]'::jsonb));
    END IF;
    IF p_patch ? 'mcp_servers' THEN
        v_next.config := v_next.config || jsonb_build_object('mcp_servers', coalesce(nullif(p_patch -> 'mcp_servers', 'null'::jsonb), '[]'::jsonb));
    END IF;
    IF p_patch ? 'multiagent' THEN
        v_next.config := CASE WHEN jsonb_typeof(p_patch -> 'multiagent') = 'object'
                              THEN v_next.config || jsonb_build_object('multiagent', p_patch -> 'multiagent')
                              ELSE v_next.config - 'multiagent' END;
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
    -- The row as written: its kept render is the trigger's, not the previous version's copied here.
    INSERT INTO drover.agents SELECT v_next.* RETURNING * INTO v_next;
    RETURN drover.api_agent_json(v_next);
END;
$$;

-- Called by every append (check_payload) and every session render: as SQL-language functions
-- with a sub-select they cannot be inlined, so each call parsed and planned its body again (a
-- profile of events.send showed Postgres in its parser). PL/pgSQL keeps the plan.
CREATE OR REPLACE FUNCTION drover.max_payload_bytes() RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT value::integer FROM drover.settings WHERE name = 'max_payload_bytes'), 1048576);
END;
$$;

CREATE OR REPLACE FUNCTION drover.session_list_cost_cents(p_model text, p_input bigint, p_output bigint, p_cache_read bigint)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT ceil((p_input * p.input_per_mtok + p_output * p.output_per_mtok + p_cache_read * p.cache_read_per_mtok) / 10000.0)::bigint
              FROM drover.model_prices p WHERE p.model = p_model);
END;
$$;
