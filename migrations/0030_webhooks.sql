-- Webhooks (issue #26): endpoints per organisation, and a transactional outbox. An event is
-- written by a trigger on the change it reports, in that change's transaction, with one delivery
-- row per enabled endpoint that lists its type: nothing is delivered that did not commit, and
-- nothing that committed is left without its deliveries. `drover api` processes deliver them
-- (signed as Standard Webhooks, which the SDK's `webhooks.unwrap` verifies), in order per
-- endpoint, retrying with backoff; see docs/guarantees.md.

CREATE TABLE drover.webhook_endpoints (
    id              text        PRIMARY KEY,
    org_id          text        NOT NULL REFERENCES drover.organizations (id),
    name            text        NOT NULL DEFAULT '',
    description     text        NOT NULL DEFAULT '',
    url             text        NOT NULL,
    enabled_events  text[]      NOT NULL,
    -- The signing secret (whsec_…), sealed with the vault key.
    secret          bytea       NOT NULL,
    key_id          text        NOT NULL,
    state           text        NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'disabled')),
    disabled_reason text        NOT NULL DEFAULT '',
    -- Which process delivers to it, until when: one deliverer per endpoint keeps its order.
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org_idx ON drover.webhook_endpoints (org_id, created_at DESC, id);

CREATE TABLE drover.webhook_events (
    seq        bigserial   PRIMARY KEY,
    id         text        NOT NULL UNIQUE,
    org_id     text        NOT NULL,
    type       text        NOT NULL,
    object_id  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE drover.webhook_deliveries (
    endpoint_id     text        NOT NULL REFERENCES drover.webhook_endpoints (id) ON DELETE CASCADE,
    event_seq       bigint      NOT NULL REFERENCES drover.webhook_events (seq),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    PRIMARY KEY (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_pending_idx ON drover.webhook_deliveries (endpoint_id, event_seq) WHERE status = 'pending';

-- Records event `p_type` about `p_object` for the organisation's enabled endpoints that list it.
-- Costs one index probe when no endpoint wants it.
CREATE FUNCTION drover.webhook_emit(p_org text, p_type text, p_object text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM drover.webhook_endpoints
                    WHERE org_id = p_org AND state = 'enabled' AND p_type = ANY (enabled_events)) THEN
        RETURN;
    END IF;
    INSERT INTO drover.webhook_events (id, org_id, type, object_id)
    VALUES (drover.new_id('wevt'), p_org, p_type, p_object) RETURNING seq INTO v_seq;
    INSERT INTO drover.webhook_deliveries (endpoint_id, event_seq)
    SELECT id, v_seq FROM drover.webhook_endpoints
     WHERE org_id = p_org AND state = 'enabled' AND p_type = ANY (enabled_events);
END;
$$;

-- created / archived / deleted of an organisation's object (agents: created at version 1,
-- updated at every later version); TG_ARGV[0] is the event types' prefix. Internal rows (a
-- dream's agent and environment) are not reported.
CREATE FUNCTION drover.webhook_object_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_row jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
    IF coalesce((v_row ->> 'internal')::boolean, false) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM drover.webhook_emit(v_row ->> 'org_id',
            TG_ARGV[0] || CASE WHEN coalesce((v_row ->> 'version')::int, 1) > 1 THEN '.updated' ELSE '.created' END, v_row ->> 'id');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM drover.webhook_emit(v_row ->> 'org_id', TG_ARGV[0] || '.deleted', v_row ->> 'id');
    ELSIF OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL AND coalesce((v_row ->> 'version')::int, 1) = 1 THEN
        -- (an agent's archive stamps every version: reported once)
        PERFORM drover.webhook_emit(v_row ->> 'org_id', TG_ARGV[0] || '.archived', v_row ->> 'id');
    ELSIF TG_ARGV[0] = 'environment' AND (to_jsonb(OLD) - 'updated_at') IS DISTINCT FROM (to_jsonb(NEW) - 'updated_at') THEN
        PERFORM drover.webhook_emit(v_row ->> 'org_id', 'environment.updated', v_row ->> 'id');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER agents_webhooks AFTER INSERT OR UPDATE OF archived_at ON drover.agents
    FOR EACH ROW EXECUTE FUNCTION drover.webhook_object_change('agent');
CREATE TRIGGER environments_webhooks AFTER INSERT OR UPDATE OR DELETE ON drover.environments
    FOR EACH ROW EXECUTE FUNCTION drover.webhook_object_change('environment');
CREATE TRIGGER vaults_webhooks AFTER INSERT OR UPDATE OF archived_at OR DELETE ON drover.vaults
    FOR EACH ROW EXECUTE FUNCTION drover.webhook_object_change('vault');
CREATE TRIGGER memory_stores_webhooks AFTER INSERT OR UPDATE OF archived_at OR DELETE ON drover.memory_stores
    FOR EACH ROW EXECUTE FUNCTION drover.webhook_object_change('memory_store');
CREATE TRIGGER sessions_webhooks AFTER INSERT OR UPDATE OF archived_at OR DELETE ON drover.sessions
    FOR EACH ROW EXECUTE FUNCTION drover.webhook_object_change('session');

-- A deployment's changes: created, updated (a new version), paused, unpaused, archived.
CREATE FUNCTION drover.webhook_deployment_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM drover.webhook_emit(NEW.org_id, 'deployment.created', NEW.id);
        RETURN NULL;
    END IF;
    IF OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL THEN
        PERFORM drover.webhook_emit(NEW.org_id, 'deployment.archived', NEW.id);
    END IF;
    IF OLD.version <> NEW.version THEN
        PERFORM drover.webhook_emit(NEW.org_id, 'deployment.updated', NEW.id);
    END IF;
    IF OLD.paused_reason IS NULL AND NEW.paused_reason IS NOT NULL THEN
        PERFORM drover.webhook_emit(NEW.org_id, 'deployment.paused', NEW.id);
    ELSIF OLD.paused_reason IS NOT NULL AND NEW.paused_reason IS NULL THEN
        PERFORM drover.webhook_emit(NEW.org_id, 'deployment.unpaused', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER deployments_webhooks AFTER INSERT OR UPDATE ON drover.deployments
    FOR EACH ROW EXECUTE FUNCTION drover.webhook_deployment_change();

-- A run: started (its session was created) or failed (it could not be).
CREATE FUNCTION drover.webhook_run_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM drover.webhook_emit(NEW.org_id, CASE WHEN NEW.error IS NULL THEN 'deployment_run.started' ELSE 'deployment_run.failed' END, NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER deployment_runs_webhooks AFTER INSERT ON drover.deployment_runs
    FOR EACH ROW EXECUTE FUNCTION drover.webhook_run_recorded();

-- A session's status events: session.status_run_started (session.status_running),
-- session.status_idled (with session.requires_action or session.budget_reached when that is why),
-- session.status_rescheduled, session.updated. The first idle of a deployment run's session
-- settles the run: deployment_run.succeeded on end_turn, deployment_run.failed otherwise.
CREATE FUNCTION drover.webhook_session_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_org text;
    v_deployment text;
    v_reason text;
    v_run text;
BEGIN
    SELECT org_id, deployment_id INTO v_org, v_deployment FROM drover.sessions WHERE id = NEW.session_id;
    CASE NEW.type
        WHEN 'session.status_running' THEN PERFORM drover.webhook_emit(v_org, 'session.status_run_started', NEW.session_id);
        WHEN 'session.status_rescheduled' THEN PERFORM drover.webhook_emit(v_org, 'session.status_rescheduled', NEW.session_id);
        WHEN 'session.updated' THEN PERFORM drover.webhook_emit(v_org, 'session.updated', NEW.session_id);
        WHEN 'session.status_idle' THEN
            v_reason := NEW.payload #>> '{stop_reason,type}';
            PERFORM drover.webhook_emit(v_org, 'session.status_idled', NEW.session_id);
            IF v_reason = 'requires_action' THEN
                PERFORM drover.webhook_emit(v_org, 'session.requires_action', NEW.session_id);
            ELSIF v_reason = 'budget_reached' THEN
                PERFORM drover.webhook_emit(v_org, 'session.budget_reached', NEW.session_id);
            END IF;
            IF v_deployment IS NOT NULL AND v_reason IS DISTINCT FROM 'requires_action' THEN
                UPDATE drover.deployment_runs SET outcome = CASE WHEN v_reason = 'end_turn' THEN 'succeeded' ELSE 'failed' END
                 WHERE session_id = NEW.session_id AND outcome IS NULL
                RETURNING id INTO v_run;
                IF v_run IS NOT NULL THEN
                    PERFORM drover.webhook_emit(v_org, CASE WHEN v_reason = 'end_turn' THEN 'deployment_run.succeeded' ELSE 'deployment_run.failed' END, v_run);
                END IF;
            END IF;
        ELSE NULL;
    END CASE;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_webhooks AFTER INSERT ON drover.events
    FOR EACH ROW WHEN (NEW.type IN ('session.status_running', 'session.status_idle', 'session.status_rescheduled', 'session.updated'))
    EXECUTE FUNCTION drover.webhook_session_event();

CREATE FUNCTION drover.api_webhook_endpoint_json(w drover.webhook_endpoints) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'webhook_endpoint', 'id', w.id, 'name', w.name, 'description', w.description, 'url', w.url,
        'enabled_events', to_jsonb(w.enabled_events), 'state', w.state, 'disabled_reason', w.disabled_reason,
        'created_at', drover.api_time(w.created_at), 'updated_at', drover.api_time(w.updated_at));
END;
$$;

CREATE FUNCTION drover.api_webhook_delivery_json(d drover.webhook_deliveries, e drover.webhook_events) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'webhook_delivery', 'endpoint_id', d.endpoint_id, 'event_id', e.id, 'event_type', e.type, 'object_id', e.object_id,
        'status', d.status, 'attempts', d.attempts, 'next_attempt_at', CASE WHEN d.status = 'pending' THEN drover.api_time(d.next_attempt_at) END,
        'last_attempt_at', drover.api_time(d.last_attempt_at), 'last_status', d.last_status, 'last_error', d.last_error,
        'delivered_at', drover.api_time(d.delivered_at), 'created_at', drover.api_time(e.created_at));
END;
$$;

-- The body and Standard Webhooks signature of event `p_seq` for an endpoint, at timestamp `p_ts`:
-- base64(HMAC-SHA256(secret, "<id>.<ts>.<body>")), the secret being the base64 after `whsec_`.
CREATE FUNCTION drover.webhook_signed(p_endpoint text, p_seq bigint, p_ts bigint, p_key text,
                                      OUT msg_id text, OUT body text, OUT signature text) LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_event drover.webhook_events;
    v_secret text;
BEGIN
    SELECT * INTO v_event FROM drover.webhook_events WHERE seq = p_seq;
    SELECT drover.vault_open(w.secret, w.key_id, p_key) INTO v_secret FROM drover.webhook_endpoints w WHERE w.id = p_endpoint;
    msg_id := v_event.id;
    body := jsonb_build_object(
        'type', 'event', 'id', v_event.id, 'created_at', drover.api_time(v_event.created_at),
        'data', jsonb_build_object('type', v_event.type, 'id', v_event.object_id, 'organization_id', v_event.org_id,
                                   'workspace_id', v_event.org_id))::text;
    signature := 'v1,' || encode(hmac(convert_to(msg_id || '.' || p_ts || '.' || body, 'UTF8'),
                                      decode(substr(v_secret, 7), 'base64'), 'sha256'), 'base64');
END;
$$;
