-- Queue depth over time, for the console's fleet page: every `drover api` process samples
-- drover.queue_stats every 15 s; samples land on 15-second marks, so replicas write each mark
-- once. A day is kept.
CREATE TABLE drover.queue_samples (
    at             timestamptz PRIMARY KEY,
    queued         integer     NOT NULL,
    running        integer     NOT NULL,
    idle           integer     NOT NULL,
    terminated     integer     NOT NULL,
    expired_leases integer     NOT NULL
);

CREATE FUNCTION drover.sample_queue() RETURNS void LANGUAGE sql AS $$
    INSERT INTO drover.queue_samples (at, queued, running, idle, terminated, expired_leases)
    SELECT to_timestamp(floor(extract(epoch FROM now()) / 15) * 15), q.queued, q.running, q.idle, q.terminated, q.expired_leases
      FROM drover.queue_stats q
    ON CONFLICT (at) DO NOTHING;
    DELETE FROM drover.queue_samples WHERE at < now() - interval '1 day';
$$;

-- The last hour's samples, oldest first.
CREATE VIEW drover.queue_history AS
SELECT at, queued, running, idle, terminated, expired_leases
  FROM drover.queue_samples
 WHERE at > now() - interval '1 hour'
 ORDER BY at;
