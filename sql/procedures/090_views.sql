-- Read-only views for administrators in psql (documented in README.md).

CREATE OR REPLACE VIEW cbs.queue_overview AS
SELECT s.status,
       count(b.build_key) AS builds,
       count(b.build_key) FILTER (WHERE b.status = 'queued' AND b.run_after <= now()) AS runnable,
       now() - min(b.created_at) AS oldest_age,
       count(b.build_key) FILTER (WHERE b.priority = 'background') AS background
  FROM unnest(ARRAY['queued', 'building', 'succeeded', 'failed', 'cancelled']) WITH ORDINALITY AS s(status, ord)
  LEFT JOIN cbs.builds b ON b.status = s.status
 GROUP BY s.status, s.ord
 ORDER BY s.ord;
COMMENT ON VIEW cbs.queue_overview IS
    'Builds per status, how many queued ones may run now, age of the oldest, and how many of them are background work.';

-- The claim order as cbs.claim_builds sees it: every client with open builds,
-- builds without a client as client NULL. turn numbers the clients with runnable
-- work in the order they will be served next (runnable requests before
-- background work, then the longest since its last start, then the oldest build).
CREATE OR REPLACE VIEW cbs.queue_by_client AS
SELECT nullif(o.client, '') AS client,
       CASE WHEN o.runnable > 0 THEN row_number() OVER (
           ORDER BY o.runnable = 0, o.runnable_requests = 0, c.last_started_at NULLS FIRST,
                    CASE WHEN o.runnable_requests > 0 THEN o.oldest_request ELSE o.oldest_background END)
       END AS turn,
       o.queued, o.queued_background, o.runnable, o.building,
       now() - least(o.oldest_request, o.oldest_background) AS oldest_queued_age,
       c.last_started_at
  FROM (SELECT coalesce(b.client, '') AS client,
               count(*) FILTER (WHERE b.status = 'queued' AND b.priority = 'request') AS queued,
               count(*) FILTER (WHERE b.status = 'queued' AND b.priority = 'background') AS queued_background,
               count(*) FILTER (WHERE b.status = 'queued' AND b.run_after <= now()) AS runnable,
               count(*) FILTER (WHERE b.status = 'queued' AND b.run_after <= now() AND b.priority = 'request') AS runnable_requests,
               count(*) FILTER (WHERE b.status = 'building') AS building,
               min(b.created_at) FILTER (WHERE b.status = 'queued' AND b.priority = 'request') AS oldest_request,
               min(b.created_at) FILTER (WHERE b.status = 'queued' AND b.priority = 'background') AS oldest_background
          FROM cbs.builds b
         WHERE b.status IN ('queued', 'building')
         GROUP BY 1) o
  LEFT JOIN cbs.clients c ON c.client = o.client
 ORDER BY turn NULLS LAST, o.building DESC, o.client;
COMMENT ON VIEW cbs.queue_by_client IS
    'Per client (NULL: builds without one): queued requests and background builds, runnable, building, oldest queued, last start, and its turn in the claim order.';

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

-- Who spends the build farm: new builds admitted and requests refused per client
-- over the last hour, with what each has queued or running now.
CREATE OR REPLACE VIEW cbs.heaviest_clients AS
SELECT u.client,
       sum(u.admitted)::bigint AS admitted,
       sum(u.refused)::bigint AS refused,
       (SELECT count(*) FROM cbs.builds b
         WHERE b.client = u.client AND b.status IN ('queued', 'building')) AS open_builds,
       max(u.minute) AS last_seen_minute
  FROM cbs.client_usage u
 WHERE u.minute >= date_trunc('minute', now() - interval '1 hour')
 GROUP BY u.client
 ORDER BY admitted DESC, refused DESC, u.client;
COMMENT ON VIEW cbs.heaviest_clients IS
    'Clients by new builds admitted in the last hour, with refusals and builds queued or running now.';

CREATE OR REPLACE VIEW cbs.api_tokens_overview AS
SELECT t.name, t.burst, t.per_hour, t.max_queued, t.max_held,
       t.created_at, t.last_used_at, t.revoked_at, t.revoked_at IS NULL AS active
  FROM cbs.api_tokens t
 ORDER BY t.created_at;
COMMENT ON VIEW cbs.api_tokens_overview IS
    'API tokens without their hashes: limits (NULL: config default), last use, revocation.';
