-- Outcomes (issue #25): `user.define_outcome` is a user-side event; a session's
-- `outcome_evaluations` are read from its outcome events, through an index of those alone (a
-- session render must not walk its log).
CREATE OR REPLACE FUNCTION drover.is_user_event_type(p_type text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_type IN ('user.message', 'user.interrupt', 'user.tool_confirmation', 'user.custom_tool_result',
                               'user.tool_result', 'system.message', 'user.define_outcome'), false)
$$;

CREATE INDEX events_outcomes_idx ON drover.events (session_id, seq)
    WHERE type IN ('user.define_outcome', 'span.outcome_evaluation_start', 'span.outcome_evaluation_end');

-- Each outcome of the session, in order, as the SDK's BetaManagedAgentsOutcomeEvaluationResource:
-- `pending` until the agent's first model request after it, `running` while the agent works or
-- revises, `evaluating` while a grader works, then the terminal verdict with `completed_at`.
-- PL/pgSQL, so that its plan is kept from one render to the next (migration 0018).
CREATE FUNCTION drover.api_outcome_evaluations(p_session text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object(
               'type', 'outcome_evaluation', 'outcome_id', d.payload ->> 'outcome_id', 'description', d.payload ->> 'description',
               'iteration', coalesce((span.payload ->> 'iteration')::int, 0),
               'result', CASE WHEN span.type = 'span.outcome_evaluation_start' THEN 'evaluating'
                              WHEN span.payload ->> 'result' IN ('satisfied', 'max_iterations_reached', 'failed', 'interrupted')
                                   THEN span.payload ->> 'result'
                              WHEN span.type IS NOT NULL OR EXISTS (
                                   SELECT 1 FROM drover.events m
                                    WHERE m.session_id = p_session AND m.seq > d.seq AND m.type = 'span.model_request_start') THEN 'running'
                              ELSE 'pending' END,
               'explanation', (SELECT e.payload ->> 'explanation' FROM drover.events e
                                WHERE e.session_id = p_session AND e.type = 'span.outcome_evaluation_end' AND e.seq > d.seq
                                  AND e.payload ->> 'outcome_id' = d.payload ->> 'outcome_id' ORDER BY e.seq DESC LIMIT 1),
               'completed_at', CASE WHEN span.payload ->> 'result' IN ('satisfied', 'max_iterations_reached', 'failed', 'interrupted')
                                    THEN drover.api_time(span.created_at) END)
           ORDER BY d.seq), '[]'::jsonb)
      FROM drover.events d
      LEFT JOIN LATERAL (
           SELECT x.type, x.payload, x.created_at FROM drover.events x
            WHERE x.session_id = p_session AND x.seq > d.seq AND x.type IN ('span.outcome_evaluation_start', 'span.outcome_evaluation_end')
              AND x.payload ->> 'outcome_id' = d.payload ->> 'outcome_id'
            ORDER BY x.seq DESC LIMIT 1) span ON true
     WHERE d.session_id = p_session AND d.type = 'user.define_outcome');
END;
$$;

-- As 0029's, with the session's outcome evaluations.
CREATE OR REPLACE FUNCTION drover.api_session_json(s drover.sessions) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_agent jsonb;
    v_model text;
BEGIN
    SELECT (drover.api_agent_json(a) - 'created_at' - 'updated_at' - 'archived_at' - 'metadata')
           || jsonb_build_object('id', s.agent_id, 'version', s.agent_version), a.model
      INTO v_agent, v_model
      FROM drover.agents a
     WHERE a.id = coalesce(s.run_agent_id, s.agent_id) AND a.version = coalesce(s.run_agent_version, s.agent_version);
    RETURN (SELECT jsonb_build_object(
        'type', 'session', 'id', s.id, 'title', s.title, 'metadata', s.metadata, 'environment_id', s.environment_id,
        'status', CASE s.status WHEN 'queued' THEN 'running' ELSE s.status END,
        'agent', v_agent,
        'resources', (SELECT coalesce(jsonb_agg(drover.api_session_resource_json(r) ORDER BY r.created_at, r.id), '[]')
                        FROM drover.session_resources r WHERE r.session_id = s.id),
        'vault_ids', to_jsonb(s.vault_ids), 'outcome_evaluations', drover.api_outcome_evaluations(s.id),
        'deployment_id', s.deployment_id, 'budget', s.budget,
        'stats', jsonb_build_object('duration_seconds', extract(epoch FROM now() - s.created_at), 'active_seconds', u.active_seconds),
        'usage', jsonb_strip_nulls(jsonb_build_object(
                     'active_seconds', u.active_seconds, 'input_tokens', u.input_tokens, 'output_tokens', u.output_tokens,
                     'cache_read_input_tokens', u.cache_read_input_tokens,
                     'list_cost', (SELECT jsonb_build_object('amount', c::text, 'currency', 'USD')
                                     FROM drover.session_list_cost_cents(v_model, u.input_tokens, u.output_tokens,
                                                                          u.cache_read_input_tokens) c WHERE c IS NOT NULL))),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at),
        'archived_at', drover.api_time(s.archived_at))
      FROM drover.api_session_usage(s.id, s.last_seq) u);
END;
$$;

-- The webhook of an evaluation's end (`session.outcome_evaluation_ended`, the session's id).
CREATE FUNCTION drover.webhook_outcome_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM drover.webhook_emit((SELECT org_id FROM drover.sessions WHERE id = NEW.session_id), 'session.outcome_evaluation_ended', NEW.session_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_outcome_webhooks AFTER INSERT ON drover.events
    FOR EACH ROW WHEN (NEW.type = 'span.outcome_evaluation_end') EXECUTE FUNCTION drover.webhook_outcome_ended();
