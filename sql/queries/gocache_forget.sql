-- $1: storage paths whose files are gone; $2: keep rows used after this time (NULL: none kept).
SELECT cbs.gocache_forget($1::text[], coalesce($2::timestamptz, 'infinity'))
