-- Session threads (issue #25, item 2): a coordinator's thread is a session of its own, whose id is
-- its thread id (`sthr_…`) and whose `parent_session_id` is the coordinator's session: it is
-- queued, claimed, leased, fenced and resumed like any session, so a harness killed mid-thread
-- loses nothing. Threads are not sessions to the API: they are listed and streamed under their
-- session (`/v1/sessions/{id}/threads`).
ALTER TABLE drover.sessions ADD COLUMN parent_session_id text, ADD COLUMN thread_agent_name text;
CREATE INDEX sessions_threads_idx ON drover.sessions (parent_session_id, created_at, id) WHERE parent_session_id IS NOT NULL;

-- Locks session `p_session` for its lease holder `p_owner` at `p_epoch`, or raises lease_lost:
-- what a coordinator does to its threads is fenced like its own writes.
CREATE FUNCTION drover.lock_held_session(p_session text, p_owner text, p_epoch bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM drover.sessions s
     WHERE s.id = p_session AND s.status = 'running' AND s.lease_owner = p_owner AND s.lease_epoch = p_epoch
       AND s.lease_expires_at > clock_timestamp()
       FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('lease_lost', format('%s does not hold session %s at epoch %s', p_owner, p_session, p_epoch));
    END IF;
END;
$$;

-- Starts a thread of session `p_parent`, whose lease `p_owner` holds at `p_epoch` (a harness
-- that lost it starts nothing: lease_lost), running agent `p_agent` at `p_version` with
-- `p_message` as its first user message, in the parent's environment, organisation and vaults;
-- and appends `session.thread_created` and `agent.thread_message_sent` to the parent's log under
-- that epoch, in the same transaction, so no harness can claim the thread before its session
-- says it exists. Idempotent by the thread's id (the coordinator's harness derives it from the
-- call that asked): a harness resumed after it started the thread starts nothing twice. True
-- when it was made now.
--
-- `p_inline` (`{name, system}`): an inline agent, defined by the coordinator and not saved: made
-- here as an internal agent with the coordinator's model and the built-in toolset.
CREATE FUNCTION drover.spawn_thread(p_parent text, p_owner text, p_epoch bigint, p_thread text, p_agent text, p_version integer,
                                    p_name text, p_message text, p_inline jsonb DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    PERFORM drover.lock_held_session(p_parent, p_owner, p_epoch);
    IF EXISTS (SELECT 1 FROM drover.sessions WHERE id = p_thread) THEN
        RETURN false;
    END IF;
    -- At most 25 threads per session (they are sessions: each holds a lease and a sandbox).
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
    INSERT INTO drover.sessions (id, agent_id, agent_version, environment_id, org_id, metadata, vault_ids, parent_session_id, thread_agent_name)
    SELECT p_thread, p_agent, p_version, s.environment_id, s.org_id, '{}', s.vault_ids, s.id, p_name
      FROM drover.sessions s WHERE s.id = p_parent;
    UPDATE drover.sessions p SET last_seq = p.last_seq + 2, updated_at = now() WHERE p.id = p_parent RETURNING p.last_seq INTO v_seq;
    INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch) VALUES
        (p_parent, v_seq - 1, 'session.thread_created', jsonb_build_object('session_thread_id', p_thread, 'agent_name', p_name), p_epoch),
        (p_parent, v_seq, 'agent.thread_message_sent',
         jsonb_build_object('to_session_thread_id', p_thread, 'to_agent_name', p_name,
                            'content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_message))), p_epoch);
    PERFORM drover.append_user_event(p_thread, 'user.message',
        jsonb_build_object('content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_message)))::text);
    PERFORM pg_notify('drover_runnable', p_thread);
    RETURN true;
END;
$$;

-- A thread that goes idle reports to its session, in the transaction of its release: its last
-- message as `agent.thread_message_received` and `session.thread_status_idle`, appended to the
-- parent's log as input (the parent's runner wakes; an idle parent is queued).
CREATE FUNCTION drover.thread_reported() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_content jsonb;
    v_stop jsonb;
    v_seq bigint;
    v_status text;
BEGIN
    SELECT e.payload -> 'content' INTO v_content FROM drover.events e
     WHERE e.session_id = NEW.id AND e.type = 'agent.message' ORDER BY e.seq DESC LIMIT 1;
    SELECT e.payload -> 'stop_reason' INTO v_stop FROM drover.events e
     WHERE e.session_id = NEW.id AND e.type = 'session.status_idle' ORDER BY e.seq DESC LIMIT 1;
    UPDATE drover.sessions p
       SET last_seq = p.last_seq + 2, last_user_seq = p.last_seq + 2, updated_at = now(),
           status = CASE WHEN p.status = 'idle' THEN 'queued' ELSE p.status END,
           queued_at = CASE WHEN p.status = 'idle' THEN now() ELSE p.queued_at END
     WHERE p.id = NEW.parent_session_id AND p.status <> 'terminated'
    RETURNING p.last_seq, p.status INTO v_seq, v_status;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch) VALUES
        (NEW.parent_session_id, v_seq - 1, 'session.thread_status_idle',
         jsonb_build_object('session_thread_id', NEW.id, 'agent_name', NEW.thread_agent_name,
                            'stop_reason', coalesce(v_stop - 'drover_reason', '{"type": "end_turn"}'::jsonb)), NULL),
        (NEW.parent_session_id, v_seq, 'agent.thread_message_received',
         jsonb_build_object('from_session_thread_id', NEW.id, 'from_agent_name', NEW.thread_agent_name,
                            'content', coalesce(v_content, '[]'::jsonb)), NULL);
    PERFORM pg_notify(CASE v_status WHEN 'queued' THEN 'drover_runnable' ELSE 'drover_user_event' END, NEW.parent_session_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER thread_reported AFTER UPDATE OF status ON drover.sessions
    FOR EACH ROW WHEN (NEW.parent_session_id IS NOT NULL AND NEW.status = 'idle' AND OLD.status IS DISTINCT FROM 'idle')
    EXECUTE FUNCTION drover.thread_reported();

-- A thread that is claimed says so on its session's log (`session.thread_status_running`), in
-- the claim's transaction.
CREATE FUNCTION drover.thread_running() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    UPDATE drover.sessions p SET last_seq = p.last_seq + 1, updated_at = now()
     WHERE p.id = NEW.parent_session_id AND p.status <> 'terminated'
    RETURNING p.last_seq INTO v_seq;
    IF FOUND THEN
        INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch)
        VALUES (NEW.parent_session_id, v_seq, 'session.thread_status_running',
                jsonb_build_object('session_thread_id', NEW.id, 'agent_name', NEW.thread_agent_name), NULL);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER thread_running AFTER UPDATE OF status ON drover.sessions
    FOR EACH ROW WHEN (NEW.parent_session_id IS NOT NULL AND NEW.status = 'running' AND OLD.status IS DISTINCT FROM 'running')
    EXECUTE FUNCTION drover.thread_running();

-- A thread as the SDK's BetaManagedAgentsSessionThread, with its usage and stats (volatile, as
-- api_session_usage moves its mark).
CREATE FUNCTION drover.api_thread_json(s drover.sessions) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'type', 'session_thread', 'id', s.id, 'session_id', s.parent_session_id, 'parent_thread_id', NULL, 'workflow_run_id', NULL,
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

-- Events of a thread name it (`session_thread_id`), as the SDK's events do. As 0017's otherwise.
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
        || CASE WHEN e.session_id LIKE 'sthr\_%' THEN jsonb_build_object('session_thread_id', e.session_id) ELSE '{}'::jsonb END
$$;

-- Sends a running or idle thread of the session `p_owner` holds at `p_epoch` another message:
-- a user.message on the thread (which wakes it; its next reply comes back as before) and
-- `agent.thread_message_sent` on the session's log, in one transaction. Idempotent by the call
-- that asked (`p_call`, kept on the thread's message). True when it was sent now.
CREATE FUNCTION drover.message_thread(p_parent text, p_owner text, p_epoch bigint, p_thread text, p_call text, p_message text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_name text;
    v_seq bigint;
BEGIN
    PERFORM drover.lock_held_session(p_parent, p_owner, p_epoch);
    SELECT t.thread_agent_name INTO v_name FROM drover.sessions t WHERE t.id = p_thread AND t.parent_session_id = p_parent;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('invalid_argument', format('no thread %s in session %s', p_thread, p_parent));
    END IF;
    IF EXISTS (SELECT 1 FROM drover.events e WHERE e.session_id = p_thread AND e.type = 'user.message' AND e.payload ->> 'drover_call_id' = p_call) THEN
        RETURN false;
    END IF;
    PERFORM drover.append_user_event(p_thread, 'user.message',
        jsonb_build_object('content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_message)), 'drover_call_id', p_call)::text);
    UPDATE drover.sessions p SET last_seq = p.last_seq + 1, updated_at = now() WHERE p.id = p_parent RETURNING p.last_seq INTO v_seq;
    INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch)
    VALUES (p_parent, v_seq, 'agent.thread_message_sent',
            jsonb_build_object('to_session_thread_id', p_thread, 'to_agent_name', v_name,
                               'content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_message))), p_epoch);
    PERFORM pg_notify('drover_runnable', p_thread);
    PERFORM pg_notify('drover_user_event', p_thread);
    RETURN true;
END;
$$;
