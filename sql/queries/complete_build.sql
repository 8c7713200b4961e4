SELECT cbs.complete_build($1::text, $2::int, $3::text, $4::jsonb)
