-- Issue #25, the rest of item 2: session threads share their session's sandbox and resources,
-- and workflow runs (`multiagent.workflows`) start threads of their own, phase by phase.

-- A thread's sandbox is its session's: recorded under the session (the thread's parent), fenced
-- by the lease of whichever holder (the session's or a thread's) provisioned it. As 0009's
-- otherwise.
CREATE OR REPLACE FUNCTION drover.record_session_sandbox(p_id text, p_pool text, p_session text, p_owner text, p_epoch bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_home text;
    v_existing text;
    v_code text;
    v_message text;
BEGIN
    SELECT coalesce(s.parent_session_id, s.id) INTO v_home FROM drover.sessions s
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner
       AND s.lease_epoch = p_epoch AND s.lease_expires_at > clock_timestamp()
       FOR UPDATE;
    IF NOT FOUND THEN
        SELECT r.code, r.message INTO v_code, v_message FROM drover.write_refusal(p_session, p_owner, p_epoch) r;
        PERFORM drover.raise_coded(v_code, v_message);
    END IF;
    IF v_home <> p_session THEN
        -- Two holders (the session's and a thread's) provisioning at once record one sandbox.
        PERFORM 1 FROM drover.sessions WHERE id = v_home FOR UPDATE;
    END IF;
    SELECT s.id INTO v_existing
      FROM drover.sandboxes s JOIN drover.sandbox_pools p ON p.id = s.pool_id
     WHERE s.session_id = v_home AND s.status = 'active' AND drover.pool_is_live(p) AND s.lease_epoch IS NOT NULL
       AND s.id <> p_id
     ORDER BY s.created_at LIMIT 1;
    IF FOUND THEN
        RETURN v_existing;
    END IF;
    INSERT INTO drover.sandboxes AS x (id, pool_id, session_id, lease_epoch) VALUES (p_id, p_pool, v_home, p_epoch)
    ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, lease_epoch = excluded.lease_epoch,
                                   status = 'active', ended_at = NULL, end_reason = NULL;
    RETURN p_id;
END;
$$;

-- A thread writes back the memory stores of its session (mounted in the sandbox they share),
-- under its own lease; the version's actor is the session. As 0022's otherwise.
CREATE OR REPLACE FUNCTION drover.memory_sync(p_session text, p_owner text, p_epoch bigint, p_store text, p_path text, p_content text,
                                              p_expected_sha256 text, p_delete boolean)
RETURNS TABLE (written boolean, sha256 text) LANGUAGE plpgsql AS $$
DECLARE
    s drover.sessions;
    v_home text;
    v_written drover.memories;
    v_memory text;
BEGIN
    SELECT * INTO s FROM drover.sessions WHERE id = p_session AND status = 'running' AND lease_owner = p_owner AND lease_epoch = p_epoch
       FOR SHARE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::text;
        RETURN;
    END IF;
    v_home := coalesce(s.parent_session_id, s.id);
    IF NOT EXISTS (SELECT 1 FROM drover.session_resources r
                    WHERE r.session_id = v_home AND r.memory_store_id = p_store AND r.access = 'read_write') THEN
        PERFORM drover.raise_coded('invalid_argument', format('memory store %s is not attached read_write to session %s', p_store, v_home));
    END IF;
    SELECT m.id INTO v_memory FROM drover.memories m WHERE m.store_id = p_store AND m.path = p_path;
    IF v_memory IS NULL AND (p_delete OR p_expected_sha256 IS NOT NULL) THEN
        PERFORM drover.raise_coded('conflict', format('no memory at %s any more', p_path));
    END IF;
    IF v_memory IS NOT NULL AND p_expected_sha256 IS NULL AND NOT p_delete THEN
        PERFORM drover.raise_coded('conflict', format('a memory was created at %s meanwhile', p_path));
    END IF;
    v_written := drover.memory_write(s.org_id, p_store, v_memory, CASE WHEN v_memory IS NULL THEN p_path END, p_content,
                                     p_expected_sha256, p_delete, jsonb_build_object('type', 'session_actor', 'session_id', v_home), p_epoch);
    RETURN QUERY SELECT true, CASE WHEN p_delete THEN NULL ELSE v_written.content_sha256 END;
END;
$$;

-- A thread started by a workflow run names it (`workflow_run_id` on the thread and on its
-- `session.thread_created`).
ALTER TABLE drover.sessions ADD COLUMN workflow_run_id text;

-- As 0035's, with the workflow run that starts the thread (NULL: the coordinator itself). A run
-- that meets the session's thread limit is told so by `thread_limit` (its own error type).
DROP FUNCTION drover.spawn_thread(text, text, bigint, text, text, integer, text, text, jsonb);
CREATE FUNCTION drover.spawn_thread(p_parent text, p_owner text, p_epoch bigint, p_thread text, p_agent text, p_version integer,
                                    p_name text, p_message text, p_inline jsonb DEFAULT NULL, p_workflow_run text DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    PERFORM drover.lock_held_session(p_parent, p_owner, p_epoch);
    IF EXISTS (SELECT 1 FROM drover.sessions WHERE id = p_thread) THEN
        RETURN false;
    END IF;
    -- At most 25 threads per session (they are sessions: each holds a lease).
    IF (SELECT count(*) FROM drover.sessions WHERE parent_session_id = p_parent) >= 25 THEN
        PERFORM drover.raise_coded('invalid_argument', format('thread_limit: session %s has started its 25 threads', p_parent));
    END IF;
    IF p_inline IS NOT NULL THEN
        INSERT INTO drover.agents AS n (id, version, name, model, system_prompt, tools, config, org_id, description, internal)
        SELECT drover.new_id('agent'), 1, p_name, a.model, coalesce(p_inline ->> 'system', ''), '[{"type": "agent_toolset_20260401"}]',
               jsonb_build_object('model_config', a.config -> 'model_config', 'mcp_servers', '[]'::jsonb), s.org_id,
               format('inline agent of thread %s', p_thread), true
          FROM drover.sessions s JOIN drover.agents a ON a.id = s.agent_id AND a.version = s.agent_version
         WHERE s.id = p_parent
        RETURNING n.id, n.version INTO p_agent, p_version;
    END IF;
    INSERT INTO drover.sessions (id, agent_id, agent_version, environment_id, org_id, metadata, vault_ids, parent_session_id, thread_agent_name,
                                 workflow_run_id)
    SELECT p_thread, p_agent, p_version, s.environment_id, s.org_id, '{}', s.vault_ids, s.id, p_name, p_workflow_run
      FROM drover.sessions s WHERE s.id = p_parent;
    UPDATE drover.sessions p SET last_seq = p.last_seq + 2, updated_at = now() WHERE p.id = p_parent RETURNING p.last_seq INTO v_seq;
    INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch) VALUES
        (p_parent, v_seq - 1, 'session.thread_created',
         jsonb_build_object('session_thread_id', p_thread, 'agent_name', p_name, 'workflow_run_id', p_workflow_run), p_epoch),
        (p_parent, v_seq, 'agent.thread_message_sent',
         jsonb_build_object('to_session_thread_id', p_thread, 'to_agent_name', p_name,
                            'content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_message))), p_epoch);
    PERFORM drover.append_user_event(p_thread, 'user.message',
        jsonb_build_object('content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_message)))::text);
    PERFORM pg_notify('drover_runnable', p_thread);
    RETURN true;
END;
$$;

-- Interrupts the threads `p_threads` of the session `p_owner` holds at `p_epoch` that are still
-- working (a stopped or timed-out workflow run's): each gets `user.interrupt`, which its holder
-- hears at once. Fenced like every write of the coordinator's.
CREATE FUNCTION drover.interrupt_threads(p_parent text, p_owner text, p_epoch bigint, p_threads text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_thread text;
    v_count integer := 0;
BEGIN
    PERFORM drover.lock_held_session(p_parent, p_owner, p_epoch);
    FOR v_thread IN SELECT t.id FROM drover.sessions t
                     WHERE t.id = ANY (p_threads) AND t.parent_session_id = p_parent AND t.status IN ('queued', 'running')
                     ORDER BY t.id LOOP
        PERFORM drover.append_user_event(v_thread, 'user.interrupt', '{}');
        PERFORM pg_notify('drover_user_event', v_thread);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END;
$$;

-- As 0035's, with the thread's workflow run.
CREATE OR REPLACE FUNCTION drover.api_thread_json(s drover.sessions) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'type', 'session_thread', 'id', s.id, 'session_id', s.parent_session_id, 'parent_thread_id', NULL, 'workflow_run_id', s.workflow_run_id,
        -- An inline agent (not saved) has no id or version.
        'agent', CASE WHEN a.internal
                      THEN (drover.api_agent_json(a) - 'id' - 'version' - 'created_at' - 'updated_at' - 'archived_at' - 'metadata' - 'multiagent')
                           || jsonb_build_object('type', 'inline')
                      ELSE (drover.api_agent_json(a) - 'created_at' - 'updated_at' - 'archived_at' - 'metadata' - 'multiagent') END,
        'status', CASE s.status WHEN 'queued' THEN 'running' ELSE s.status END,
        'stats', jsonb_build_object('duration_seconds', extract(epoch FROM now() - s.created_at), 'active_seconds', u.active_seconds,
                                    'startup_seconds', 0),
        'usage', jsonb_strip_nulls(jsonb_build_object(
                     'active_seconds', u.active_seconds, 'input_tokens', u.input_tokens, 'output_tokens', u.output_tokens,
                     'cache_read_input_tokens', u.cache_read_input_tokens)),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at), 'archived_at', drover.api_time(s.archived_at))
      FROM drover.agents a, drover.api_session_usage(s.id, s.last_seq) u WHERE a.id = s.agent_id AND a.version = s.agent_version);
END;
$$;
