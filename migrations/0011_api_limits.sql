-- Rate limits and idempotency for `drover api`, held in Postgres so they hold across replicas.

-- Requests per minute an organisation may make: creates (agents, environments, sessions) and
-- everything else. Change them per organisation with UPDATE.
ALTER TABLE drover.organizations
    ADD COLUMN creates_per_minute  integer NOT NULL DEFAULT 60,
    ADD COLUMN requests_per_minute integer NOT NULL DEFAULT 600;

-- One row per organisation, kind and minute (fixed windows); old windows are deleted as new
-- ones start.
CREATE TABLE drover.rate_windows (
    org_id       text        NOT NULL,
    kind         text        NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer     NOT NULL,
    PRIMARY KEY (org_id, kind, window_start)
);

-- Authenticates a key and takes requests from its organisation's allowance of that kind
-- ('create' or 'request') for the current minute, in one round trip. An API process takes them
-- in small batches (a twentieth of the limit, at most 50) and spends them itself, so that most
-- requests need no write; the allowance holds across replicas (a batch a replica does not spend
-- in its minute is lost, never granted twice). No row: the key is unknown or revoked.
-- `granted` 0: over the limit, `retry_after_s` until the window turns.
CREATE FUNCTION drover.api_admit(p_secret text, p_kind text)
RETURNS TABLE (key_id text, org_id text, operator boolean, granted integer, retry_after_s integer, window_start timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_key drover.api_keys;
    v_limit integer;
    v_batch integer;
    v_window timestamptz := date_trunc('minute', now());
    v_before integer;
    v_granted integer;
BEGIN
    SELECT * INTO v_key FROM drover.api_keys k WHERE k.key_sha256 = sha256(convert_to(p_secret, 'UTF8')) AND k.revoked_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT CASE WHEN p_kind = 'create' THEN o.creates_per_minute ELSE o.requests_per_minute END INTO v_limit
      FROM drover.organizations o WHERE o.id = v_key.org_id;
    v_batch := greatest(1, least(50, v_limit / 20));
    INSERT INTO drover.rate_windows AS w (org_id, kind, window_start, count) VALUES (v_key.org_id, p_kind, v_window, 0)
    ON CONFLICT ON CONSTRAINT rate_windows_pkey DO NOTHING;
    SELECT w.count INTO v_before FROM drover.rate_windows w
     WHERE w.org_id = v_key.org_id AND w.kind = p_kind AND w.window_start = v_window FOR UPDATE;
    v_granted := greatest(0, least(v_batch, v_limit - v_before));
    IF v_granted > 0 THEN
        UPDATE drover.rate_windows w SET count = v_before + v_granted
         WHERE w.org_id = v_key.org_id AND w.kind = p_kind AND w.window_start = v_window;
    END IF;
    IF v_before = 0 THEN
        DELETE FROM drover.rate_windows w WHERE w.org_id = v_key.org_id AND w.kind = p_kind AND w.window_start < v_window;
    END IF;
    RETURN QUERY SELECT v_key.id, v_key.org_id, v_key.operator, v_granted,
                        greatest(1, ceil(extract(epoch FROM v_window + interval '1 minute' - now()))::integer), v_window;
END;
$$;

-- Idempotency-Key on POSTs: the first response to a key is kept for 24 h and returned again for
-- the same request; the same key with another request is refused.
CREATE TABLE drover.idempotency_keys (
    org_id       text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       integer,
    response     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

-- Claims a key for a request. Returns 'new' (go ahead, then record the response), 'replay'
-- (with the stored status and response), 'in_progress' (the first request with this key has
-- not finished) or 'mismatch' (the key was used for another request).
CREATE FUNCTION drover.api_idempotency_begin(p_org text, p_key text, p_request text,
                                             OUT state text, OUT status integer, OUT response text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_hash bytea := sha256(convert_to(p_request, 'UTF8'));
    v_row drover.idempotency_keys;
BEGIN
    DELETE FROM drover.idempotency_keys k WHERE k.org_id = p_org AND k.key = p_key AND k.created_at < now() - interval '24 hours';
    INSERT INTO drover.idempotency_keys (org_id, key, request_hash) VALUES (p_org, p_key, v_hash)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        state := 'new';
        RETURN;
    END IF;
    SELECT * INTO v_row FROM drover.idempotency_keys k WHERE k.org_id = p_org AND k.key = p_key;
    IF v_row.request_hash <> v_hash THEN
        state := 'mismatch';
    ELSIF v_row.status IS NULL THEN
        state := 'in_progress';
    ELSE
        state := 'replay';
        status := v_row.status;
        response := v_row.response;
    END IF;
END;
$$;

CREATE FUNCTION drover.api_idempotency_end(p_org text, p_key text, p_status integer, p_response text) RETURNS void
LANGUAGE sql AS $$
    UPDATE drover.idempotency_keys SET status = p_status, response = p_response WHERE org_id = p_org AND key = p_key
$$;

-- A request that failed in a way worth retrying (5xx) frees its key.
CREATE FUNCTION drover.api_idempotency_abandon(p_org text, p_key text) RETURNS void LANGUAGE sql AS $$
    DELETE FROM drover.idempotency_keys WHERE org_id = p_org AND key = p_key AND status IS NULL
$$;
