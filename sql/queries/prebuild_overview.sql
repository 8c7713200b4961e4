-- The newest prebuilds as JSON rows, for tests and tools ($1: how many).
SELECT coalesce(jsonb_agg(to_jsonb(o)), '[]') FROM (SELECT * FROM cbs.prebuild_overview LIMIT $1::int) o
