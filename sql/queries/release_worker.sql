SELECT cbs.release_worker($1::text, $2::text)
