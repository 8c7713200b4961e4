SELECT cbs.release_reproductions($1::text, $2::text)
