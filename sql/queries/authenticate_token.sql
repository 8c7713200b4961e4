-- The active API token with this sha256, with its own limits.
SELECT name, burst, per_hour, max_queued, max_held FROM cbs.authenticate_token($1::text)
