-- Two costs found measuring issue #22's request rates (docs/benchmarks.md).
--
-- 1. The API's renders were SQL functions, which Postgres parses and plans again at every
--    statement that calls them (a SQL function's plan lives for one statement; only the
--    prepared outer statement is cached). Rendering one session cost more than the rest of a
--    retrieve: 2,464 renders/s on 8 connections, against 10,570 with the renders in PL/pgSQL,
--    whose statements' plans are cached per connection. Their bodies stay where they were
--    written (0010 to 0017); this changes only their language, each body becoming the
--    function's one RETURN. A later migration that re-creates one of them re-creates it in
--    PL/pgSQL.
DO $$
DECLARE
    f record;
    v_body text;
BEGIN
    FOR f IN SELECT p.oid, p.proname, p.prosrc, p.provolatile FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
              WHERE p.pronamespace = 'drover'::regnamespace AND l.lanname = 'sql'
                AND (p.proname LIKE 'api\_%\_json' OR p.proname = 'api_agent_tools')
    LOOP
        v_body := btrim(f.prosrc, E' \n\t;');
        IF v_body !~* '^select' THEN
            RAISE EXCEPTION 'drover.%: expected a body of one SELECT', f.proname;
        END IF;
        EXECUTE format('CREATE OR REPLACE FUNCTION drover.%I(%s) RETURNS %s LANGUAGE plpgsql %s AS %L',
                       f.proname, pg_get_function_arguments(f.oid), pg_get_function_result(f.oid),
                       CASE f.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
                       E'BEGIN\n    RETURN (' || v_body || E');\nEND;');
    END LOOP;
END;
$$;

-- 2. drover.send_event notified the harnesses inside its transaction. Postgres serialises the
--    commits of notifying transactions (a database-wide lock held through the commit's flush),
--    so every user event waited for every other: 16 writers committed 4,800 notifying
--    transactions/s against 23,100 plain ones, and 17,900 when each notified after its commit.
--    drover.append_user_event does what send_event did and says whom to wake instead
--    (`wake`: the channel, NULL for no one) and returns the row it wrote (`event`: a join on
--    drover.events in the calling statement cannot see it, since that statement's snapshot was
--    taken before the function wrote); drover api commits, then notifies (`PostCommitNotifier`,
--    batched across requests). send_event, the SQL interface, still
--    notifies in its transaction, which a caller may roll back.
CREATE FUNCTION drover.append_user_event(p_session text, p_type text, p_payload text)
RETURNS TABLE (seq bigint, id uuid, created_at timestamptz, wake text, event drover.events) LANGUAGE plpgsql AS $$
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

    RETURN QUERY
    INSERT INTO drover.events AS e (session_id, seq, type, payload, lease_epoch)
    VALUES (p_session, v_seq, p_type, v_payload, NULL)
    RETURNING e.seq, e.id, e.created_at,
              CASE v_status WHEN 'queued' THEN 'drover_runnable' WHEN 'running' THEN 'drover_user_event' END, e;
END;
$$;

CREATE OR REPLACE FUNCTION drover.send_event(p_session text, p_type text, p_payload text)
RETURNS TABLE (seq bigint, id uuid, created_at timestamptz) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM drover.append_user_event(p_session, p_type, p_payload) a;
    IF r.wake IS NOT NULL THEN
        PERFORM pg_notify(r.wake, p_session);
    END IF;
    seq := r.seq;
    id := r.id;
    created_at := r.created_at;
    RETURN NEXT;
END;
$$;

-- 3. Harness admission (issue #22): a harness claims no sessions while its sessions wait for
--    sandboxes (every sandbox it can reach running a call), so the surplus waits in this queue,
--    not in a harness's memory. Each harness records whether it is holding back, at once when
--    it changes and with every heartbeat; `drover harnesses` and `drover top` show it.
ALTER TABLE drover.harnesses ADD COLUMN claims_paused boolean NOT NULL DEFAULT false;

CREATE FUNCTION drover.harness_heartbeat(p_id text, p_claims_paused boolean) RETURNS void LANGUAGE sql AS $$
    UPDATE drover.harnesses SET last_heartbeat_at = now(), claims_paused = p_claims_paused WHERE id = p_id
$$;

CREATE OR REPLACE VIEW drover.harness_status AS
SELECT h.id, h.host, h.pid, h.started_at, h.last_heartbeat_at,
       extract(epoch FROM clock_timestamp() - h.last_heartbeat_at)::float8 AS heartbeat_age_s,
       (SELECT count(*) FROM drover.sessions s WHERE s.status = 'running' AND s.lease_owner = h.id)::int AS sessions_held,
       CASE WHEN h.stopped_at IS NULL AND h.gone_at IS NULL AND h.last_heartbeat_at > clock_timestamp() - interval '15 seconds'
            THEN 'alive' ELSE 'gone' END AS state,
       h.claims_paused AND h.stopped_at IS NULL AND h.gone_at IS NULL AS claims_paused
  FROM drover.harnesses h;
