-- $3: claim lease in seconds.
SELECT * FROM cbs.claim_webhook_deliveries($1::text, $2::int, make_interval(secs => $3::float8))
