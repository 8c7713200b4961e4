-- Queues a prebuild once per key (NULL id: nothing queued). $1 spec, $2 reason,
-- $3 detail, $4 source key, $5 its requests, $6 janitor id.
SELECT p.id, p.build_key FROM cbs.prebuild($1::jsonb, $2::text, $3::jsonb, $4::text, $5::bigint, $6::text) p
