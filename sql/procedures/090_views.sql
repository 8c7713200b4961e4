-- Read-only views for administrators in psql (documented in README.md).

CREATE OR REPLACE VIEW cbs.queue_overview AS
SELECT s.status,
       count(b.build_key) AS builds,
       count(b.build_key) FILTER (WHERE b.status = 'queued' AND b.run_after <= now()) AS runnable,
       now() - min(b.created_at) AS oldest_age
  FROM unnest(ARRAY['queued', 'building', 'succeeded', 'failed', 'cancelled']) WITH ORDINALITY AS s(status, ord)
  LEFT JOIN cbs.builds b ON b.status = s.status
 GROUP BY s.status, s.ord
 ORDER BY s.ord;
COMMENT ON VIEW cbs.queue_overview IS 'Builds per status, how many queued ones may run now, age of the oldest.';

CREATE OR REPLACE VIEW cbs.active_builds AS
SELECT b.build_key, b.worker_id, w.host, b.attempt, b.max_attempts,
       b.spec->>'caddy_version' AS caddy_version,
       concat_ws('/', b.spec->>'os', b.spec->>'arch', b.spec->>'arm') AS target,
       jsonb_array_length(b.spec->'plugins') AS plugins,
       b.started_at, now() - b.started_at AS running_for,
       b.lease_expires_at - now() AS lease_left
  FROM cbs.builds b
  LEFT JOIN cbs.workers w ON w.worker_id = b.worker_id
 WHERE b.status = 'building'
 ORDER BY b.started_at;
COMMENT ON VIEW cbs.active_builds IS 'Who builds what, since when, and how much of the lease is left.';

CREATE OR REPLACE VIEW cbs.recent_failures AS
SELECT b.build_key, b.finished_at, b.attempt, b.error,
       b.spec->>'caddy_version' AS caddy_version,
       concat_ws('/', b.spec->>'os', b.spec->>'arch', b.spec->>'arm') AS target,
       (SELECT string_agg(p->>'module' || '@' || (p->>'version'), ' ')
          FROM jsonb_array_elements(b.spec->'plugins') p) AS plugins
  FROM cbs.builds b
 WHERE b.status = 'failed' AND b.finished_at > now() - interval '7 days'
 ORDER BY b.finished_at DESC;
COMMENT ON VIEW cbs.recent_failures IS 'Builds that failed terminally in the last 7 days, newest first.';
