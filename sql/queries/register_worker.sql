SELECT cbs.register_worker($1::text, $2::text, $3::text, $4::int, $5::jsonb, $6::text)
