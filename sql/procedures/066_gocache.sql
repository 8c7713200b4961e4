-- The shared Go cache's bookkeeping (cbs.gocache_entries). Workers record an
-- entry before they upload its file (so no file exists that no row names, short
-- of a crash in between) and renew the entries their builds used; the janitor
-- trims in two calls, like retention: list, delete the files, then the rows.

-- An entry about to be uploaded (or uploaded again): created, or its size and
-- last use renewed.
CREATE OR REPLACE FUNCTION cbs.gocache_record(p_path text, p_kind text, p_size bigint)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO cbs.gocache_entries AS e (path, kind, size)
    VALUES (p_path, p_kind, p_size)
    ON CONFLICT (path) DO UPDATE SET size = EXCLUDED.size, last_used_at = now()
$$;
COMMENT ON FUNCTION cbs.gocache_record(text, text, bigint) IS
    'Worker: records a shared Go cache object before uploading it (or renews it).';

-- Entries a build used: their last use is renewed. Returns those of the paths
-- that have no row (the worker uploads them from the build host's own cache).
CREATE OR REPLACE FUNCTION cbs.gocache_touch(p_paths text[])
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cbs.gocache_entries e SET last_used_at = now()
     WHERE e.path = ANY (p_paths) AND e.last_used_at < now() - interval '1 minute';
    RETURN QUERY
        SELECT p FROM unnest(p_paths) p
         WHERE NOT EXISTS (SELECT 1 FROM cbs.gocache_entries e WHERE e.path = p);
END;
$$;
COMMENT ON FUNCTION cbs.gocache_touch(text[]) IS
    'Worker: renews the last use of the shared Go cache objects a build used; returns the paths not in the cache.';

-- Trimming, step 1: entries unused for max_age, and the least recently used
-- beyond max_bytes in total, oldest first, with the last use they were listed
-- with (step 2 keeps an entry used again meanwhile).
CREATE OR REPLACE FUNCTION cbs.gocache_trim_candidates(max_bytes bigint, max_age interval, max_count int)
RETURNS TABLE (path text, size bigint, last_used_at timestamptz) LANGUAGE sql STABLE AS $$
    SELECT e.path, e.size, e.last_used_at
      FROM (SELECT g.path, g.size, g.last_used_at,
                   sum(g.size) OVER (ORDER BY g.last_used_at DESC, g.path DESC) AS newer_bytes
              FROM cbs.gocache_entries g) e
     WHERE e.last_used_at < now() - max_age OR e.newer_bytes > max_bytes
     ORDER BY e.last_used_at, e.path
     LIMIT greatest(max_count, 0)
$$;
COMMENT ON FUNCTION cbs.gocache_trim_candidates(bigint, interval, int) IS
    'Janitor trimming, step 1: shared Go cache objects unused for max_age or least recently used beyond max_bytes (their files are deleted next).';

-- Trimming, step 2 (and a worker that found an entry corrupt): deletes the rows
-- of entries whose files are gone, unless used again after `used_before`.
CREATE OR REPLACE FUNCTION cbs.gocache_forget(p_paths text[], used_before timestamptz DEFAULT 'infinity')
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM cbs.gocache_entries e WHERE e.path = ANY (p_paths) AND e.last_used_at <= used_before;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.gocache_forget(text[], timestamptz) IS
    'Janitor trimming, step 2: deletes the rows of shared Go cache objects whose files were removed, unless used after used_before.';

-- For psql admins: what the shared cache holds.
CREATE OR REPLACE VIEW cbs.gocache_usage AS
SELECT kind, count(*) AS entries, coalesce(sum(size), 0)::bigint AS bytes,
       pg_size_pretty(coalesce(sum(size), 0)::bigint) AS size,
       min(last_used_at) AS least_recent_use, max(last_used_at) AS most_recent_use
  FROM cbs.gocache_entries
 GROUP BY kind;
COMMENT ON VIEW cbs.gocache_usage IS
    'Shared Go cache per kind (build cache entries, module files): how many, how big, oldest and newest use.';
