-- session.updated (issue #23, item 5): what sessions.update changed (its title, its whole
-- metadata bag when not empty, its agent's materialised snapshot), appended to the session's log
-- in the transaction that changes it. Written by drover api, not by a lease holder (no epoch), and
-- it runs nothing: the session's status is left as it is; the change applies from the next turn.
CREATE FUNCTION drover.append_session_event(p_session text, p_type text, p_payload jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    IF p_type IS DISTINCT FROM 'session.updated' THEN
        PERFORM drover.raise_coded('unknown_event_type', format('%s is not written by the API', coalesce(p_type, 'NULL')));
    END IF;
    UPDATE drover.sessions SET last_seq = last_seq + 1, updated_at = now() WHERE id = p_session RETURNING last_seq INTO v_seq;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('not_found', format('no session %s', p_session));
    END IF;
    INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch) VALUES (p_session, v_seq, p_type, p_payload, NULL);
    RETURN v_seq;
END;
$$;
