-- A set-based session cycle: a batch of sessions is claimed, written and released with a few
-- statements instead of several per session, with every guarantee kept (fencing per row,
-- contiguous seq, the append-only log, lease history, commit before report).

-- Less write amplification -----------------------------------------------------------------

-- No query reads sessions by status alone (the claim and the views use the partial indexes or
-- scan), and every status change had to update it.
DROP INDEX drover.sessions_status_idx;

-- Time-ordered event ids (UUID version 7 layout: 48 bits of milliseconds, then random): new ids
-- land at the right edge of events_id_idx instead of on random pages.
CREATE FUNCTION drover.time_ordered_uuid() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                  FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;
ALTER TABLE drover.events ALTER COLUMN id SET DEFAULT drover.time_ordered_uuid();

-- No foreign keys on the hot tables: each cost a FOR KEY SHARE lookup of the session row per
-- insert. Every writer already holds that row (it bumped last_seq or the epoch in the same
-- statement), and sessions are never deleted while they have a log: deleting one is an explicit
-- operation that removes its log with it.
ALTER TABLE drover.events DROP CONSTRAINT events_session_id_fkey;
ALTER TABLE drover.lease_history DROP CONSTRAINT lease_history_session_id_fkey;

CREATE FUNCTION drover.refuse_session_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM drover.events WHERE session_id = OLD.id)
       OR EXISTS (SELECT 1 FROM drover.lease_history WHERE session_id = OLD.id) THEN
        RAISE EXCEPTION 'session % has a log: delete it with its log, not alone', OLD.id USING ERRCODE = 'DR010';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER sessions_keep_their_logs BEFORE DELETE ON drover.sessions
    FOR EACH ROW EXECUTE FUNCTION drover.refuse_session_delete();

-- The claim writes session.status_running ---------------------------------------------------

DROP FUNCTION drover.claim(text, integer, integer);
-- Claims up to p_max runnable sessions (queued ones, and running ones whose lease expired or was
-- cut short because its holder is gone), skipping rows other claimers hold. In the same
-- statement, for each: the epoch is bumped (fencing the previous holder), an attempt counted,
-- the grant recorded in lease_history with its cause, and `session.status_running` appended
-- under the new epoch, so a harness's first write of a turn costs no statement of its own.
-- last_seq in the result includes that event.
CREATE FUNCTION drover.claim(p_owner text, p_max integer, p_ttl_ms integer)
RETURNS TABLE (session_id text, lease_epoch bigint, lease_expires_at timestamptz, last_seq bigint,
               agent_id text, agent_version integer, environment_id text, attempt integer)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_owner, '') = '' OR coalesce(p_max, 0) NOT BETWEEN 1 AND 1000 OR coalesce(p_ttl_ms, 0) < 100 THEN
        PERFORM drover.raise_coded('invalid_argument', 'claim needs an owner, 1..1000 sessions and a TTL of at least 100 ms');
    END IF;
    RETURN QUERY
    WITH expired AS (
        SELECT s.id, s.priority, s.queued_at, coalesce(s.lease_end_cause, 'expired') AS cause FROM drover.sessions s
         WHERE s.status = 'running' AND s.lease_expires_at < now()
         ORDER BY s.lease_expires_at
         LIMIT p_max
         FOR UPDATE SKIP LOCKED
    ), queued AS (
        SELECT s.id, s.priority, s.queued_at, 'queued'::text AS cause FROM drover.sessions s
         WHERE s.status = 'queued'
         ORDER BY s.priority DESC, s.queued_at
         LIMIT p_max
         FOR UPDATE SKIP LOCKED
    ), picked AS (
        SELECT c.id, c.cause FROM (SELECT * FROM expired UNION ALL SELECT * FROM queued) c
         ORDER BY c.priority DESC, c.queued_at
         LIMIT p_max
    ), claimed AS (
        UPDATE drover.sessions s
           SET status = 'running',
               lease_owner = p_owner,
               lease_epoch = s.lease_epoch + 1,
               lease_acquired_at = clock_timestamp(),
               lease_expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond',
               last_heartbeat_at = clock_timestamp(),
               claim_attempts = s.claim_attempts + 1,
               lease_end_cause = NULL,
               last_seq = s.last_seq + 1,
               updated_at = now()
          FROM picked
         WHERE s.id = picked.id
        RETURNING s.id, s.lease_epoch, s.lease_expires_at, s.last_seq, s.agent_id, s.agent_version, s.environment_id,
                  s.lease_acquired_at, s.claim_attempts, picked.cause
    ), history AS (
        INSERT INTO drover.lease_history (session_id, epoch, owner, acquired_at, cause)
        SELECT c.id, c.lease_epoch, p_owner, c.lease_acquired_at, c.cause FROM claimed c
    ), running AS (
        INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch, created_at)
        SELECT c.id, c.last_seq, 'session.status_running', '{}', c.lease_epoch, c.lease_acquired_at FROM claimed c
    )
    SELECT c.id, c.lease_epoch, c.lease_expires_at, c.last_seq, c.agent_id, c.agent_version, c.environment_id,
           c.claim_attempts FROM claimed c;
END;
$$;

-- Set-based group commit -----------------------------------------------------------------------

CREATE TYPE drover.write_result AS (
    ord integer, seq bigint, id uuid, created_at timestamptz, expires_at timestamptz, status text, code text, message text
);

-- Group commit, set-based: the ops (as in 0002: append, heartbeat, release, each naming
-- session, owner and epoch) are grouped per lease, and each lease's row is locked (in session
-- order, so concurrent batches cannot deadlock) and updated once: last_seq bumped by its appends,
-- the heartbeat and the release applied. Its appends are inserted in one statement. The fence is
-- applied per lease: a stale lease's ops are refused (lease_lost) without disturbing the others.
-- An op with a bad type, size or argument is refused alone, before anything is written. A
-- lease's ops apply as one, in the order appends, heartbeat, release. Rows come back in the
-- order of p_ops.
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
               coalesce(e.value->>'status', 'idle') AS target, (e.value->>'handled_through')::bigint AS handled
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
        INSERT INTO drover.events AS e (session_id, seq, type, payload, lease_epoch)
        SELECT v.session, u.base + v.k, v.type, v.payload::jsonb, v.epoch
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

-- One round trip per batch: a batch's finishing writes and the next claim, in one transaction
-- (one commit). Each result is reported only after that commit. Rows: first the write results
-- (kind 'write', as write_batch returns them), then the claimed leases (kind 'lease', as claim
-- returns them).
CREATE FUNCTION drover.cycle(p_ops jsonb, p_payloads text[], p_owner text, p_max integer, p_ttl_ms integer)
RETURNS TABLE (kind text, ord integer, seq bigint, id uuid, created_at timestamptz, expires_at timestamptz, status text,
               code text, message text, session_id text, lease_epoch bigint, lease_expires_at timestamptz, last_seq bigint,
               agent_id text, agent_version integer, environment_id text, attempt integer)
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_array_length(coalesce(p_ops, '[]')) > 0 THEN
        RETURN QUERY SELECT 'write', w.ord, w.seq, w.id, w.created_at, w.expires_at, w.status, w.code, w.message,
                            NULL::text, NULL::bigint, NULL::timestamptz, NULL::bigint, NULL::text, NULL::integer, NULL::text, NULL::integer
                       FROM drover.write_batch(p_ops, p_payloads) w;
    END IF;
    IF coalesce(p_max, 0) > 0 THEN
        RETURN QUERY SELECT 'lease', NULL::integer, NULL::bigint, NULL::uuid, NULL::timestamptz, NULL::timestamptz, NULL::text,
                            NULL::text, NULL::text, c.session_id, c.lease_epoch, c.lease_expires_at, c.last_seq, c.agent_id,
                            c.agent_version, c.environment_id, c.attempt
                       FROM drover.claim(p_owner, p_max, p_ttl_ms) c;
    END IF;
END;
$$;
