-- Workers that are neither stopped nor silent for longer than $1 seconds: their
-- containers are not leftovers. Reads are allowed straight from the table.
SELECT worker_id FROM cbs.workers
 WHERE stopped_at IS NULL AND last_seen_at > now() - make_interval(secs => $1::float8)
