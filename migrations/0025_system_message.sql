-- `system.message` (issue #23, item 5): privileged text a client sends with its user message or
-- tool result, for that turn and every later one. The harness appends it to the system prompt
-- of every request after it (the Messages API takes system text only at the top). Which types a
-- client may send is one function now, so a new one changes a line, not append_user_event.
CREATE FUNCTION drover.is_user_event_type(p_type text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_type IN ('user.message', 'user.interrupt', 'user.tool_confirmation', 'user.custom_tool_result',
                               'user.tool_result', 'system.message'), false)
$$;

-- As 0018's, with the types from drover.is_user_event_type.
CREATE OR REPLACE FUNCTION drover.append_user_event(p_session text, p_type text, p_payload text)
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
    IF NOT drover.is_user_event_type(p_type) THEN
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
