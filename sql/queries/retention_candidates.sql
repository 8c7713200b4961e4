-- $1: max age in seconds; $2: batch size; $3: keys to pass over.
SELECT * FROM cbs.retention_candidates(make_interval(secs => $1::float8), $2::int, $3::text[])
