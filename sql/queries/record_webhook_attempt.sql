-- $7, $8: retry backoff bounds in seconds. Returns delivered / retry / gave_up, NULL when fenced out.
SELECT cbs.record_webhook_attempt($1::bigint, $2::int, $3::boolean, $4::int, $5::text, $6::int,
                                  make_interval(secs => $7::float8), make_interval(secs => $8::float8))
