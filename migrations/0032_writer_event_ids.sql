-- Event ids chosen by the writer (issue #23, event_deltas): an append op may carry `id` (a
-- UUID), the id its event gets, so that a harness can name an agent.message in the previews it
-- streams (`event_start`, `event_delta`) before the message is written. Without `id` the event
-- gets a new one, as before. Otherwise write_batch is 0008's.
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
                WHEN o.op = 'append' AND (o.type IS NULL OR o.type !~ '^(agent|session|span)\.[a-z][a-z_]*$') THEN 'unknown_event_type'
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
