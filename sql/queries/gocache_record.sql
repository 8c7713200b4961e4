-- $1: storage path; $2: kind (build or module); $3: size in bytes.
SELECT cbs.gocache_record($1::text, $2::text, $3::bigint)
