-- Janitor policy that deletes: retention of old builds and forgetting of workers
-- that went away. Retention is two calls on purpose: the janitor first lists the
-- candidates, deletes their files from storage, and only then deletes the rows,
-- so a crash in between leaves rows whose files are gone (rebuilt on the next
-- request, and listed again by the next run) but never files nobody knows about.

-- Terminal builds nobody asked for during max_age, oldest first, except those in
-- skip (whose files could not be deleted earlier in the same run). Queued and
-- building ones are never candidates, whatever their age.
CREATE OR REPLACE FUNCTION cbs.retention_candidates(max_age interval, max_count int, skip text[] DEFAULT '{}')
RETURNS TABLE (build_key text, status text, os text) LANGUAGE sql STABLE AS $$
    SELECT b.build_key, b.status, b.spec->>'os'
      FROM cbs.builds b
     WHERE b.status IN ('succeeded', 'failed', 'cancelled')
       AND b.build_key <> ALL (coalesce(skip, '{}'))
       AND greatest(b.last_requested_at, coalesce(b.finished_at, b.created_at)) < now() - max_age
     ORDER BY greatest(b.last_requested_at, coalesce(b.finished_at, b.created_at)), b.build_key
     LIMIT greatest(max_count, 0)
$$;
COMMENT ON FUNCTION cbs.retention_candidates(interval, int, text[]) IS
    'Janitor retention, step 1: terminal builds not requested for max_age (their files are deleted next).';

-- Deletes the rows (attempts, logs and webhook deliveries cascade) of builds whose
-- files are already gone. A build re-queued since it was listed keeps its row:
-- its next run publishes the files again. Returns how many rows were deleted.
CREATE OR REPLACE FUNCTION cbs.delete_builds(build_keys text[])
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM cbs.builds b
     WHERE b.build_key = ANY (build_keys)
       AND b.status IN ('succeeded', 'failed', 'cancelled');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.delete_builds(text[]) IS
    'Janitor retention, step 2: deletes the rows of terminal builds whose storage was already removed.';

-- Workers that have not been seen for unseen_for and hold no build.
CREATE OR REPLACE FUNCTION cbs.forget_workers(unseen_for interval)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM cbs.workers w
     WHERE w.last_seen_at < now() - unseen_for
       AND NOT EXISTS (SELECT 1 FROM cbs.builds b WHERE b.status = 'building' AND b.worker_id = w.worker_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.forget_workers(interval) IS
    'Janitor: removes registry rows of workers not seen for unseen_for that hold no build; returns how many.';

-- Which janitor leads: the holder of the leader advisory lock (key 0x0cb50002 =
-- 213188610, LEADER_LOCK_KEY in src/janitor/leader.rs) on its lock connection,
-- whose application_name is 'cbs-janitor <id>'.
CREATE OR REPLACE VIEW cbs.janitor_leader AS
SELECT substr(a.application_name, length('cbs-janitor ') + 1) AS janitor_id,
       a.pid, a.client_addr, a.backend_start AS connected_since
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted
   AND l.classid = 0 AND l.objid = 213188610 AND l.objsubid = 1
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database());
COMMENT ON VIEW cbs.janitor_leader IS 'The janitor that currently leads (runs the policy jobs and delivers webhooks); empty: none.';
