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

-- What a harness may append: its own event types (agent., session., span.) and a workflow
-- run's (workflow_run.), which the coordinator's harness writes.
CREATE FUNCTION drover.is_harness_event_type(p_type text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_type ~ '^(agent|session|span|workflow_run)\.[a-z][a-z_]*$', false)
$$;

-- As 0032's, with the types from drover.is_harness_event_type.
CREATE OR REPLACE FUNCTION drover.write_batch(p_ops jsonb, p_payloads text[] DEFAULT '{}')
RETURNS TABLE (ord integer, seq bigint, id uuid, created_at timestamptz, expires_at timestamptz, status text,
               code text, message text)
LANGUAGE plpgsql AS $$
DECLARE
    v_max integer := drover.max_payload_bytes();
    v_rows drover.write_result[];
    v_queued text[];
    v_session text;
BEGIN
    IF p_ops IS NULL OR jsonb_typeof(p_ops) <> 'array' THEN
        PERFORM drover.raise_coded('invalid_argument', 'write_batch takes a JSON array of ops');
    END IF;
    WITH ops AS (
        SELECT e.ordinality::integer AS ord, e.value->>'op' AS op, e.value->>'session' AS session,
               e.value->>'owner' AS owner, (e.value->>'epoch')::bigint AS epoch, e.value->>'type' AS type,
               p_payloads[(e.value->>'payload')::integer] AS payload, (e.value->>'ttl_ms')::integer AS ttl_ms,
               coalesce(e.value->>'status', 'idle') AS target, (e.value->>'handled_through')::bigint AS handled,
               CASE WHEN e.value->>'id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN (e.value->>'id')::uuid END AS event_id
          FROM jsonb_array_elements(p_ops) WITH ORDINALITY e
    ), checked AS (
        SELECT o.*, CASE
                WHEN o.op IS NULL OR o.op NOT IN ('append', 'heartbeat', 'release') THEN 'invalid_argument'
                WHEN o.op = 'append' AND NOT drover.is_harness_event_type(o.type) THEN 'unknown_event_type'
                WHEN o.op = 'append' AND o.payload IS NULL THEN 'invalid_payload'
                WHEN o.op = 'append' AND octet_length(o.payload) > v_max THEN 'payload_too_large'
                WHEN o.op = 'append' AND left(ltrim(o.payload, E' \t\r\n'), 1) <> '{' THEN 'invalid_payload'
                WHEN o.op = 'heartbeat' AND coalesce(o.ttl_ms, 0) < 100 THEN 'invalid_argument'
                WHEN o.op = 'release' AND o.target NOT IN ('idle', 'terminated', 'queued') THEN 'invalid_argument'
            END AS bad
          FROM ops o
    ), valid AS (
        SELECT c.*, CASE WHEN c.op = 'append'
                         THEN row_number() OVER (PARTITION BY c.session, c.owner, c.epoch, c.op = 'append' ORDER BY c.ord) END AS k
          FROM checked c WHERE c.bad IS NULL
    ), leases AS (
        SELECT v.session, v.owner, v.epoch,
               count(*) FILTER (WHERE v.op = 'append')::integer AS n,
               (array_agg(v.ttl_ms ORDER BY v.ord DESC) FILTER (WHERE v.op = 'heartbeat'))[1] AS ttl_ms,
               (array_agg(v.target ORDER BY v.ord) FILTER (WHERE v.op = 'release'))[1] AS target,
               (array_agg(v.handled ORDER BY v.ord) FILTER (WHERE v.op = 'release'))[1] AS handled,
               bool_or(v.op = 'release') AS releases
          FROM valid v GROUP BY v.session, v.owner, v.epoch
    ), locked AS (
        SELECT s.id, l.owner, l.epoch FROM drover.sessions s JOIN leases l ON l.session = s.id
         WHERE s.status = 'running' AND s.lease_owner = l.owner AND s.lease_epoch = l.epoch
           AND s.lease_expires_at > clock_timestamp()
         ORDER BY s.id
           FOR UPDATE OF s
    ), updated AS (
        UPDATE drover.sessions s
           SET last_seq = s.last_seq + l.n,
               updated_at = now(),
               last_heartbeat_at = CASE WHEN l.ttl_ms IS NOT NULL THEN clock_timestamp() ELSE s.last_heartbeat_at END,
               status = CASE WHEN NOT l.releases THEN s.status
                             WHEN l.target = 'idle' AND s.last_user_seq > coalesce(l.handled, s.last_seq + l.n) THEN 'queued'
                             ELSE l.target END,
               queued_at = CASE WHEN l.releases AND l.target = 'idle' AND s.last_user_seq > coalesce(l.handled, s.last_seq + l.n)
                                THEN now() ELSE s.queued_at END,
               lease_owner = CASE WHEN l.releases THEN NULL ELSE s.lease_owner END,
               lease_expires_at = CASE WHEN l.releases THEN NULL
                                       WHEN l.ttl_ms IS NOT NULL THEN clock_timestamp() + l.ttl_ms * interval '1 millisecond'
                                       ELSE s.lease_expires_at END,
               claim_attempts = CASE WHEN l.releases THEN 0 ELSE s.claim_attempts END
          FROM leases l, locked k
         WHERE k.id = s.id AND l.session = s.id AND l.owner = k.owner AND l.epoch = k.epoch
        RETURNING s.id, l.owner, l.epoch, s.last_seq - l.n AS base, s.status AS new_status, s.lease_expires_at AS new_expiry,
                  l.releases
    ), appended AS (
        INSERT INTO drover.events AS e (id, session_id, seq, type, payload, lease_epoch)
        SELECT coalesce(v.event_id, gen_random_uuid()), v.session, u.base + v.k, v.type, v.payload::jsonb, v.epoch
          FROM valid v JOIN updated u ON u.id = v.session AND u.owner = v.owner AND u.epoch = v.epoch
         WHERE v.op = 'append'
        RETURNING e.session_id, e.seq, e.id, e.created_at
    ), results AS (
        SELECT c.ord,
               a.seq, a.id, a.created_at,
               -- A heartbeat batched with its lease's release succeeded before it: the expiry it set.
               CASE WHEN c.op = 'heartbeat' AND u.id IS NOT NULL
                    THEN coalesce(u.new_expiry, clock_timestamp() + c.ttl_ms * interval '1 millisecond') END AS expires_at,
               CASE WHEN c.op = 'release' AND u.id IS NOT NULL THEN u.new_status END AS status,
               c.bad AS bad, u.id IS NULL AS refused, c.session, c.owner, c.epoch, c.op
          FROM checked c
          LEFT JOIN updated u ON c.bad IS NULL AND u.id = c.session AND u.owner = c.owner AND u.epoch = c.epoch
          LEFT JOIN valid v ON v.ord = c.ord
          LEFT JOIN appended a ON c.op = 'append' AND u.id IS NOT NULL AND a.session_id = c.session AND a.seq = u.base + v.k
    )
    -- Why a lease's ops were refused is looked up only for refused rows (a CASE, not a join: a
    -- lateral call would run for every row).
    SELECT array_agg(ROW(r.ord, r.seq, r.id, r.created_at, r.expires_at, r.status,
                         CASE WHEN r.bad IS NOT NULL THEN r.bad
                              WHEN r.refused THEN (drover.write_refusal(r.session, r.owner, r.epoch)).code END,
                         CASE WHEN r.bad IS NOT NULL THEN format('%s refused: %s', coalesce(r.op, 'op'), r.bad)
                              WHEN r.refused THEN (drover.write_refusal(r.session, r.owner, r.epoch)).message END
                        )::drover.write_result ORDER BY r.ord),
           (SELECT array_agg(u.id) FROM updated u WHERE u.releases AND u.new_status = 'queued')
      INTO v_rows, v_queued
      FROM results r;
    FOREACH v_session IN ARRAY coalesce(v_queued, '{}') LOOP
        PERFORM pg_notify('drover_runnable', v_session);
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END;
$$;

-- A `session.error` whose type the SDK does not define (Drover's own: `retries_exhausted`, a
-- store code, `model_…` from the provider) is shown as the SDK's nearest type, the one logged
-- kept as `drover_error_type`: the log is unchanged and old rows read as the SDK's models say.
-- As 0035's otherwise.
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
                ELSE '{}'::jsonb END
$$;
