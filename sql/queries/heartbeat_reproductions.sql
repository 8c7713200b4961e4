-- $2: lease in seconds; $3: the process's incarnation (NULL: every reproduction of the worker id).
SELECT cbs.heartbeat_reproductions($1::text, make_interval(secs => $2::float8), $3::text)
