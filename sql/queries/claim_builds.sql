-- $3: lease in seconds.
SELECT * FROM cbs.claim_builds($1::text, $2::int, make_interval(secs => $3::float8))
