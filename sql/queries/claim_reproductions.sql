-- $3: lease in seconds; $4: the claiming process's incarnation (NULL: none).
SELECT * FROM cbs.claim_reproductions($1::text, $2::int, make_interval(secs => $3::float8), $4::text)
