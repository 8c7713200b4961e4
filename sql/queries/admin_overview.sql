-- Everything the admin page shows, as one JSON document in one round trip:
-- the documented views plus the queued builds (which the admin may cancel)
-- and the latest prebuilds with why they were queued.
SELECT jsonb_build_object(
    'queue', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                  'status', status, 'builds', builds, 'runnable', runnable,
                  'oldest_age', date_trunc('second', oldest_age)::text)), '[]')
                FROM cbs.queue_overview),
    'active', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                  'build_key', build_key, 'worker_id', worker_id, 'host', host, 'attempt', attempt,
                  'target', target, 'running_for', date_trunc('second', running_for)::text,
                  'lease_left', date_trunc('second', lease_left)::text)), '[]')
                 FROM cbs.active_builds),
    'queued', (SELECT coalesce(jsonb_agg(q), '[]') FROM (
                  SELECT b.build_key, concat_ws('/', b.spec->>'os', b.spec->>'arch', b.spec->>'arm') AS target,
                         b.client, b.priority,
                         date_trunc('second', now() - b.created_at)::text AS waiting_for
                    FROM cbs.builds b WHERE b.status = 'queued'
                   ORDER BY b.created_at LIMIT 100) q),
    'failures', (SELECT coalesce(jsonb_agg(f), '[]') FROM (
                  SELECT build_key, finished_at, attempt, error, target, plugins
                    FROM cbs.recent_failures LIMIT 50) f),
    'clients', (SELECT coalesce(jsonb_agg(c), '[]') FROM (
                  SELECT client, admitted, refused, open_builds
                    FROM cbs.heaviest_clients LIMIT 20) c),
    'prebuilds', (SELECT coalesce(jsonb_agg(p), '[]') FROM (
                  SELECT build_key, date_trunc('second', queued_at) AS queued_at, reason, target,
                         caddy_version, plugins, detail, source_requests, status,
                         date_trunc('second', ready_after)::text AS ready_after
                    FROM cbs.prebuild_overview LIMIT 20) p))
