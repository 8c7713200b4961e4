SELECT * FROM cbs.request_reproduction($1::text, $2::text)
