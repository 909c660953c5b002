-- Operator views: what `drover leases`, `drover harnesses`, `drover pools` and `drover top` show,
-- for psql and any dashboard. Ages are measured by the database's clock.

-- Held leases (running sessions), soonest to expire first when ordered by expires_in_s.
CREATE VIEW drover.leases AS
SELECT s.id AS session_id, s.status, s.lease_owner AS owner, s.lease_epoch AS epoch, s.lease_acquired_at AS acquired_at,
       extract(epoch FROM clock_timestamp() - s.lease_acquired_at)::float8 AS held_for_s,
       extract(epoch FROM clock_timestamp() - s.last_heartbeat_at)::float8 AS heartbeat_age_s,
       extract(epoch FROM s.lease_expires_at - clock_timestamp())::float8 AS expires_in_s,
       s.lease_expires_at < clock_timestamp() AS expired
  FROM drover.sessions s
 WHERE s.status = 'running';

-- One row: queue depth by status, expired leases, the oldest runnable session's wait, and
-- running totals (inserted events, granted leases) from which rates are derived by sampling.
CREATE VIEW drover.queue_stats AS
SELECT count(*) FILTER (WHERE status = 'queued')::int AS queued,
       count(*) FILTER (WHERE status = 'running')::int AS running,
       count(*) FILTER (WHERE status = 'idle')::int AS idle,
       count(*) FILTER (WHERE status = 'terminated')::int AS terminated,
       count(*) FILTER (WHERE status = 'running' AND lease_expires_at < clock_timestamp())::int AS expired_leases,
       coalesce(extract(epoch FROM clock_timestamp() - min(queued_at) FILTER (
           WHERE status = 'queued' OR (status = 'running' AND lease_expires_at < clock_timestamp()))), 0)::float8
           AS oldest_runnable_age_s,
       (SELECT coalesce(n_tup_ins, 0) FROM pg_stat_user_tables WHERE relid = 'drover.events'::regclass)::bigint
           AS events_inserted_total,
       (SELECT coalesce(n_tup_ins, 0) FROM pg_stat_user_tables WHERE relid = 'drover.lease_history'::regclass)::bigint
           AS leases_granted_total
  FROM drover.sessions;

-- Harness processes: alive while they heartbeat (every 5 s) and have not stopped.
CREATE VIEW drover.harness_status AS
SELECT h.id, h.host, h.pid, h.started_at, h.last_heartbeat_at,
       extract(epoch FROM clock_timestamp() - h.last_heartbeat_at)::float8 AS heartbeat_age_s,
       (SELECT count(*) FROM drover.sessions s WHERE s.status = 'running' AND s.lease_owner = h.id)::int AS sessions_held,
       CASE WHEN h.stopped_at IS NULL AND h.last_heartbeat_at > clock_timestamp() - interval '15 seconds'
            THEN 'alive' ELSE 'gone' END AS state
  FROM drover.harnesses h;

-- Sandbox pools with their live sandboxes as recorded.
CREATE VIEW drover.pool_status AS
SELECT p.id, p.address, p.status, p.capacity,
       (SELECT count(*) FROM drover.sandboxes s WHERE s.pool_id = p.id AND s.status = 'active')::int AS sandboxes,
       p.running_calls,
       extract(epoch FROM clock_timestamp() - p.last_heartbeat_at)::float8 AS heartbeat_age_s,
       p.started_at
  FROM drover.sandbox_pools p;
