-- $1: max total bytes; $2: max age in seconds; $3: batch size.
SELECT * FROM cbs.gocache_trim_candidates($1::bigint, make_interval(secs => $2::float8), $3::int)
