SELECT cbs.finish_reproduction($1::bigint, $2::int, $3::text, $4::text, $5::jsonb)
