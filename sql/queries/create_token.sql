SELECT cbs.create_token($1::text, $2::integer, $3::float8, $4::integer, $5::integer)
