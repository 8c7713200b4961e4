SELECT * FROM cbs.requeue($1::text)
