-- $1: how many; $2: the window in seconds.
SELECT build_key, spec, requests FROM cbs.popular_specs($1::int, make_interval(secs => $2::float8))
