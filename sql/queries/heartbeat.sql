-- $2: lease in seconds.
SELECT cbs.heartbeat($1::text, make_interval(secs => $2::float8))
