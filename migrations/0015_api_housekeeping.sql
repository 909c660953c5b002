-- Housekeeping of drover api's state in Postgres (issue #27, items 4 and 6).

-- An Idempotency-Key whose first request never finished (its replica crashed mid-request) answered
-- 409 'in progress' for 24 hours. A claim without a response is now stale after two minutes (no
-- request runs that long), and the same request may then take it over; another request with the
-- key is still refused.
CREATE OR REPLACE FUNCTION drover.api_idempotency_begin(p_org text, p_key text, p_request text,
                                                        OUT state text, OUT status integer, OUT response text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_hash bytea := sha256(convert_to(p_request, 'UTF8'));
    v_row drover.idempotency_keys;
BEGIN
    DELETE FROM drover.idempotency_keys k
     WHERE k.org_id = p_org AND k.key = p_key
       AND (k.created_at < now() - interval '24 hours'
            OR (k.status IS NULL AND k.request_hash = v_hash AND k.created_at < now() - interval '2 minutes'));
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

-- Keys were deleted only when the same key came again after 24 hours; the rest stayed forever.
CREATE INDEX idempotency_keys_created_at ON drover.idempotency_keys (created_at);

-- The queue sample, once per 15-second mark across replicas: a replica that finds the mark taken
-- (or another replica taking it) reads nothing (queue_stats scans the sessions). The one that
-- takes it also drops expired samples and idempotency keys, a batch at a time.
CREATE OR REPLACE FUNCTION drover.sample_queue() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz := to_timestamp(floor(extract(epoch FROM now()) / 15) * 15);
BEGIN
    IF EXISTS (SELECT 1 FROM drover.queue_samples WHERE at = v_at)
       OR NOT pg_try_advisory_xact_lock(hashtext('drover.sample_queue'), (extract(epoch FROM v_at) / 15)::integer) THEN
        RETURN;
    END IF;
    INSERT INTO drover.queue_samples (at, queued, running, idle, terminated, expired_leases)
    SELECT v_at, q.queued, q.running, q.idle, q.terminated, q.expired_leases
      FROM drover.queue_stats q
    ON CONFLICT (at) DO NOTHING;
    DELETE FROM drover.queue_samples WHERE at < now() - interval '1 day';
    DELETE FROM drover.idempotency_keys
     WHERE ctid IN (SELECT ctid FROM drover.idempotency_keys WHERE created_at < now() - interval '24 hours' LIMIT 10000);
END;
$$;
