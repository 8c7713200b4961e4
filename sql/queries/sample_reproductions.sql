-- $2: how recent a success must be, in seconds.
SELECT cbs.sample_reproductions($1::float8, make_interval(secs => $2::float8), $3::int)
