SELECT cbs.build_key($1::jsonb)
