-- Instant takeover: a harness that dies outright is known at once, because Postgres releases the
-- session-level advisory lock its listener connection held. Its leases are then cut short and
-- claimed like expired ones, without waiting for the TTL. The TTL still covers what is truly
-- ambiguous: a paused or partitioned harness whose connection is still up.

-- Each harness process gets a unique advisory-lock key at registration; it holds that lock on
-- its listener connection for as long as it lives.
CREATE SEQUENCE drover.harness_lock_keys;
ALTER TABLE drover.harnesses ADD COLUMN lock_key bigint UNIQUE;
-- When its liveness lock was found free while it still held leases.
ALTER TABLE drover.harnesses ADD COLUMN gone_at timestamptz;

-- Why a running lease ended before its TTL ('owner_gone'); cleared by the next claim.
ALTER TABLE drover.sessions ADD COLUMN lease_end_cause text;
-- Why each lease was granted: 'queued' (runnable), 'expired' (the holder's TTL ran out) or
-- 'owner_gone' (the holder's process or connection died). NULL for leases granted before 0007.
ALTER TABLE drover.lease_history ADD COLUMN cause text;

DROP FUNCTION drover.register_harness(text, text, integer);
-- Registers a harness process; returns the advisory-lock key it must hold while it lives.
CREATE FUNCTION drover.register_harness(p_id text, p_host text, p_pid integer) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO drover.harnesses (id, host, pid, lock_key) VALUES (p_id, p_host, p_pid, nextval('drover.harness_lock_keys'))
    ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), stopped_at = NULL, gone_at = NULL
    RETURNING lock_key
$$;

-- Cuts short the live leases of p_owners: they expire now, with cause 'owner_gone', and claimers
-- are woken. Safe whatever those harnesses believe: every write they might still attempt is
-- fenced by owner, epoch and expiry. p_reset_attempts: the owner lived (it gives its leases up
-- itself), so the sessions' crash-loop counts are reset as by a release. Returns how many.
CREATE FUNCTION drover.cut_leases(p_owners text[], p_reset_attempts boolean) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_cut integer;
BEGIN
    UPDATE drover.sessions s
       SET lease_expires_at = clock_timestamp(), lease_end_cause = 'owner_gone', updated_at = now(),
           claim_attempts = CASE WHEN p_reset_attempts THEN 0 ELSE s.claim_attempts END
     WHERE s.status = 'running' AND s.lease_owner = ANY (p_owners) AND s.lease_expires_at > clock_timestamp();
    GET DIAGNOSTICS v_cut = ROW_COUNT;
    IF v_cut > 0 THEN
        PERFORM pg_notify('drover_runnable', '');
    END IF;
    RETURN v_cut;
END;
$$;

-- Cuts short the leases of every harness that holds live leases while its liveness lock is free
-- (its process or its listener connection died), and marks it gone. Cheap enough to run often:
-- one pass over running sessions and a non-blocking lock attempt per owner. Returns how many
-- leases it cut.
CREATE FUNCTION drover.rescue_orphans() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_gone text[];
BEGIN
    SELECT array_agg(d.id) INTO v_gone FROM (
        -- Each owner of a live lease once (OFFSET 0 keeps the lock attempt out of the scan).
        SELECT h.id, h.lock_key FROM drover.harnesses h
         WHERE h.lock_key IS NOT NULL
           AND h.id IN (SELECT s.lease_owner FROM drover.sessions s
                         WHERE s.status = 'running' AND s.lease_expires_at > clock_timestamp())
        OFFSET 0
    ) d WHERE pg_try_advisory_xact_lock(d.lock_key);
    IF v_gone IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE drover.harnesses SET gone_at = now() WHERE id = ANY (v_gone) AND gone_at IS NULL;
    RETURN drover.cut_leases(v_gone, false);
END;
$$;

-- A harness whose liveness connection dropped while it kept running cannot know whether its
-- leases were cut meanwhile; it stops its sessions' work and gives every lease it holds up this
-- way, so other harnesses claim them at once. Returns how many.
CREATE FUNCTION drover.relinquish_leases(p_owner text) RETURNS integer LANGUAGE sql AS $$
    SELECT drover.cut_leases(ARRAY[p_owner], true)
$$;

-- The claim records each grant's cause (drover.claim, as migration 0008 defines it).

-- Harness processes: alive while they heartbeat (every 5 s), have not stopped, and were not found
-- gone by their liveness lock.
CREATE OR REPLACE VIEW drover.harness_status AS
SELECT h.id, h.host, h.pid, h.started_at, h.last_heartbeat_at,
       extract(epoch FROM clock_timestamp() - h.last_heartbeat_at)::float8 AS heartbeat_age_s,
       (SELECT count(*) FROM drover.sessions s WHERE s.status = 'running' AND s.lease_owner = h.id)::int AS sessions_held,
       CASE WHEN h.stopped_at IS NULL AND h.gone_at IS NULL AND h.last_heartbeat_at > clock_timestamp() - interval '15 seconds'
            THEN 'alive' ELSE 'gone' END AS state
  FROM drover.harnesses h;
