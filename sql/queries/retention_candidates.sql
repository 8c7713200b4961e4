-- $1: max age in seconds; $2: batch size.
SELECT * FROM cbs.retention_candidates(make_interval(secs => $1::float8), $2::int)
