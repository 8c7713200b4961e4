-- $4: JSON array of {"step", "stream", "line"}.
SELECT cbs.append_logs($1::text, $2::int, $3::text, $4::jsonb)
