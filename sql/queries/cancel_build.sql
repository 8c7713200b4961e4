SELECT * FROM cbs.cancel_build($1::text, $2::text)
