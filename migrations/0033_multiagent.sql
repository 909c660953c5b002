-- An agent's `multiagent` configuration (issue #23 item 5, the ground of #25): stored in its
-- version's config, resolved by the caller (`MultiagentConfig`: references to versions, defaults,
-- the update's merge), returned as the SDK's `BetaManagedAgentsMultiagent`. As 0017's
-- api_agent_json and 0024's api_update_agent otherwise.
CREATE OR REPLACE FUNCTION drover.api_agent_json(a drover.agents) RETURNS jsonb LANGUAGE sql STABLE AS $$
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
$$;

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
    INSERT INTO drover.agents SELECT v_next.*;
    RETURN drover.api_agent_json(v_next);
END;
$$;
