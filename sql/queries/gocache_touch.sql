-- $1: storage paths a build used; returns those without a row.
SELECT p FROM cbs.gocache_touch($1::text[]) p
