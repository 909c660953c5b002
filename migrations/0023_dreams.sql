-- Dreams (issue #24, item 3): what the SDK's `client.beta.dreams` creates, lists, retrieves,
-- archives and cancels. A dream reads one memory store and up to 100 sessions and writes a
-- reorganised store. It runs as a Drover session (the SDK's `session_id`: stream it to watch the
-- dream), so it is queued, leased, fenced and resumed after a harness dies exactly like any other
-- work: the session's agent is the dream's own (its model, a system prompt saying what to do and
-- the dream's instructions), its sandbox mounts the output store read-write and the sessions'
-- transcripts read-only under /mnt/session/transcripts/, and its memory write-back is the
-- output. The dream's status follows the session (a trigger below): `running` from its first
-- claim, `completed` when a turn ends with `end_turn`, `failed` when it ends otherwise.

-- The dream's agent and the organisation's dream environment are Drover's, not the user's: they
-- are left out of agents.list and environments.list (retrieving one by id still works, so the
-- dream's session renders as every session does).
ALTER TABLE drover.agents ADD COLUMN internal boolean NOT NULL DEFAULT false;
ALTER TABLE drover.environments ADD COLUMN internal boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX environments_dreams ON drover.environments (org_id) WHERE internal;
ALTER TABLE drover.sessions ADD COLUMN dream_id text;

CREATE TABLE drover.dreams (
    id              text        PRIMARY KEY,
    org_id          text        NOT NULL REFERENCES drover.organizations (id),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed', 'canceled')),
    memory_store_id text        NOT NULL,
    session_ids     text[]      NOT NULL,
    instructions    text,
    model           jsonb       NOT NULL,
    output_behavior jsonb       NOT NULL,
    -- The store the result is written to: a copy of the input (create_new), or the input itself.
    output_store_id text,
    -- The session that runs the dream, and when it was first claimed (before that, the SDK's
    -- `session_id` and `outputs` are empty).
    session_id      text,
    started_at      timestamptz,
    error           jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    archived_at     timestamptz
);
CREATE INDEX dreams_org_newest ON drover.dreams (org_id, created_at DESC, id DESC);
CREATE INDEX dreams_store ON drover.dreams (memory_store_id);

CREATE FUNCTION drover.api_dream_json(d drover.dreams) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s drover.sessions;
    v_input bigint := 0;
    v_output bigint := 0;
    v_cache_read bigint := 0;
BEGIN
    SELECT * INTO s FROM drover.sessions WHERE id = d.session_id;
    IF d.started_at IS NOT NULL AND s.id IS NOT NULL THEN
        SELECT u.input_tokens, u.output_tokens, u.cache_read_input_tokens INTO v_input, v_output, v_cache_read
          FROM drover.api_session_usage(s.id, s.last_seq) u;
    END IF;
    RETURN jsonb_build_object(
        'type', 'dream', 'id', d.id, 'status', d.status,
        'inputs', jsonb_build_array(
            jsonb_build_object('type', 'memory_store', 'memory_store_id', d.memory_store_id),
            jsonb_build_object('type', 'sessions', 'session_ids', to_jsonb(d.session_ids))),
        'instructions', d.instructions, 'model', d.model, 'output_behavior', d.output_behavior,
        'outputs', CASE WHEN d.started_at IS NOT NULL AND d.output_store_id IS NOT NULL
                        THEN jsonb_build_array(jsonb_build_object('type', 'memory_store', 'memory_store_id', d.output_store_id))
                        ELSE '[]'::jsonb END,
        'session_id', CASE WHEN d.started_at IS NOT NULL THEN d.session_id END,
        'error', d.error,
        'usage', jsonb_build_object(
            'input_tokens', v_input, 'output_tokens', v_output, 'cache_read_input_tokens', v_cache_read,
            'cache_creation_input_tokens', 0),
        'created_at', drover.api_time(d.created_at), 'ended_at', drover.api_time(d.ended_at),
        'archived_at', drover.api_time(d.archived_at));
END;
$$;

-- A dream's status from its session's: in the transaction that changes the session (the claim,
-- the release with its closing events), so the two never disagree. A final status stays.
CREATE FUNCTION drover.dream_progress() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_stop text;
    v_error jsonb;
BEGIN
    IF NEW.status = 'running' THEN
        UPDATE drover.dreams SET status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,
                                 started_at = coalesce(started_at, now())
         WHERE id = NEW.dream_id AND started_at IS NULL;
    ELSIF NEW.status IN ('idle', 'terminated') THEN
        SELECT e.payload -> 'stop_reason' ->> 'type' INTO v_stop FROM drover.events e
         WHERE e.session_id = NEW.id AND e.type = 'session.status_idle' ORDER BY e.seq DESC LIMIT 1;
        IF NEW.status = 'idle' AND v_stop = 'end_turn' THEN
            UPDATE drover.dreams SET status = 'completed', ended_at = now()
             WHERE id = NEW.dream_id AND status IN ('pending', 'running');
        ELSE
            SELECT jsonb_build_object('type', coalesce(e.payload -> 'error' ->> 'type', 'internal_error'),
                                      'message', coalesce(e.payload -> 'error' ->> 'message', 'the dream stopped'))
              INTO v_error FROM drover.events e
             WHERE e.session_id = NEW.id AND e.type = 'session.error' ORDER BY e.seq DESC LIMIT 1;
            UPDATE drover.dreams
               SET status = 'failed', ended_at = now(),
                   error = coalesce(v_error, jsonb_build_object('type', 'internal_error',
                                    'message', format('the dream''s session stopped (%s) before it finished', coalesce(v_stop, NEW.status))))
             WHERE id = NEW.dream_id AND status IN ('pending', 'running');
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER dream_progress AFTER UPDATE OF status ON drover.sessions
    FOR EACH ROW WHEN (NEW.dream_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION drover.dream_progress();

-- A session as the dream reads it: its conversation as Markdown, in log order (messages, tool
-- calls and results, errors; a result longer than 4,000 characters cut, and said so).
CREATE FUNCTION drover.session_transcript(p_session text) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    e record;
    v_out text;
    v_text text;
BEGIN
    SELECT format(E'# Session %s\n\n%s', s.id, CASE WHEN s.title IS NULL THEN '' ELSE format(E'Title: %s\n\n', s.title) END)
      INTO v_out FROM drover.sessions s WHERE s.id = p_session;
    FOR e IN SELECT ev.type, ev.payload FROM drover.events ev
              WHERE ev.session_id = p_session
                AND ev.type IN ('user.message', 'agent.message', 'agent.tool_use', 'agent.mcp_tool_use', 'agent.custom_tool_use',
                                'agent.tool_result', 'agent.mcp_tool_result', 'user.custom_tool_result', 'session.error')
              ORDER BY ev.seq LOOP
        v_text := CASE jsonb_typeof(e.payload -> 'content')
                  WHEN 'string' THEN e.payload ->> 'content'
                  WHEN 'array' THEN (SELECT string_agg(coalesce(b ->> 'text', ''), E'\n') FROM jsonb_array_elements(e.payload -> 'content') b)
                  ELSE '' END;
        v_out := v_out || CASE
            WHEN e.type = 'user.message' THEN format(E'## User\n\n%s\n\n', v_text)
            WHEN e.type = 'agent.message' THEN format(E'## Agent\n\n%s\n\n', v_text)
            WHEN e.type IN ('agent.tool_use', 'agent.mcp_tool_use', 'agent.custom_tool_use') THEN
                format(E'### Tool call: %s\n\n%s\n\n', e.payload ->> 'name', e.payload -> 'input')
            WHEN e.type = 'session.error' THEN format(E'### Error\n\n%s\n\n', e.payload -> 'error' ->> 'message')
            ELSE format(E'### Tool result%s\n\n%s\n\n', CASE WHEN (e.payload ->> 'is_error')::boolean THEN ' (error)' ELSE '' END,
                        CASE WHEN length(v_text) > 4000 THEN left(v_text, 4000) || E'\n[… cut]' ELSE v_text END)
            END;
    END LOOP;
    RETURN v_out;
END;
$$;
