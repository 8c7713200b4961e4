-- Reproductions (see migrations/0013_reproductions.sql): queued by an
-- administrator or the janitor's sampling policy, claimed by a worker other than
-- the one that built the original, at background priority, under a lease that
-- heartbeats renew, and fenced by (id, attempt, worker_id) like builds. The
-- outcome is decided here, by comparing the reproducing worker's sha256 with the
-- original's, so that no client can call a mismatch "reproduced".

-- The worker that built a succeeded build: the provenance names it; builds
-- recorded before it did are found in their succeeded attempt.
CREATE OR REPLACE FUNCTION cbs.original_worker(b cbs.builds)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        nullif(b.provenance->>'worker_id', ''),
        (SELECT a.worker_id FROM cbs.build_attempts a
          WHERE a.build_key = b.build_key AND a.outcome = 'succeeded'
          ORDER BY a.id DESC LIMIT 1))
$$;
COMMENT ON FUNCTION cbs.original_worker(cbs.builds) IS
    'The worker that built a succeeded build (its provenance, else its succeeded attempt).';

-- Queues a reproduction of a succeeded build, or returns the one already open.
-- Raises P0002 for an unknown build and CB409 for one that cannot be reproduced
-- (not succeeded, or without recorded go.mod/go.sum).
CREATE OR REPLACE FUNCTION cbs.request_reproduction(build_key text, requested_by text DEFAULT 'admin')
RETURNS cbs.reproductions LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    b cbs.builds;
    r cbs.reproductions;
BEGIN
    SELECT * INTO b FROM cbs.builds x WHERE x.build_key = request_reproduction.build_key FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('build %s not found', request_reproduction.build_key);
    END IF;
    IF b.status <> 'succeeded' THEN
        RAISE EXCEPTION USING ERRCODE = 'CB409',
            MESSAGE = format('build %s is %s: only a succeeded build can be reproduced', b.build_key, b.status);
    END IF;
    IF coalesce(b.provenance->>'go_mod', '') = '' OR b.provenance->>'go_sum' IS NULL OR cbs.original_worker(b) IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CB409',
            MESSAGE = format('build %s has no recorded go.mod, go.sum and worker to reproduce from', b.build_key);
    END IF;
    SELECT * INTO r FROM cbs.reproductions x
     WHERE x.build_key = b.build_key AND x.status IN ('queued', 'running');
    IF FOUND THEN
        RETURN r;
    END IF;
    INSERT INTO cbs.reproductions (build_key, requested_by, original_sha256, original_worker_id)
    VALUES (b.build_key, request_reproduction.requested_by, b.artifact->>'sha256', cbs.original_worker(b))
    ON CONFLICT (build_key) WHERE status IN ('queued', 'running') DO NOTHING
    RETURNING * INTO r;
    IF NOT FOUND THEN
        -- Another session queued one at the same moment: join it.
        SELECT * INTO r FROM cbs.reproductions x
         WHERE x.build_key = b.build_key AND x.status IN ('queued', 'running');
        RETURN r;
    END IF;
    PERFORM pg_notify('cbs_reproduction_queued', b.build_key);
    RETURN r;
END;
$$;
COMMENT ON FUNCTION cbs.request_reproduction(text, text) IS
    'Queues a reproduction of a succeeded build by another worker (or returns the open one); P0002 unknown build, CB409 not reproducible.';

-- Background priority: nothing is claimed while a runnable request build waits,
-- and the worker asks only after cbs.claim_builds left it a free slot. A worker
-- never gets a reproduction of a build it built itself; with no other worker, the
-- reproduction waits.
DROP FUNCTION IF EXISTS cbs.claim_reproductions(text, int, interval, text);
CREATE FUNCTION cbs.claim_reproductions(worker_id text, max_count int, lease interval, incarnation text DEFAULT NULL)
RETURNS TABLE (id bigint, build_key text, attempt int, spec jsonb, provenance jsonb,
               original_sha256 text, original_worker_id text)
LANGUAGE plpgsql AS $$
DECLARE
    r cbs.reproductions;
BEGIN
    IF EXISTS (SELECT 1 FROM cbs.builds x
                WHERE x.status = 'queued' AND x.priority = 'request' AND x.run_after <= now()) THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT x.* FROM cbs.reproductions x
          JOIN cbs.builds b ON b.build_key = x.build_key AND b.status = 'succeeded'
         WHERE x.status = 'queued' AND x.run_after <= now()
           AND x.original_worker_id <> claim_reproductions.worker_id
         ORDER BY x.created_at, x.id
         LIMIT greatest(max_count, 0)
         FOR UPDATE OF x SKIP LOCKED
    LOOP
        UPDATE cbs.reproductions x SET
            status = 'running', attempt = x.attempt + 1, worker_id = claim_reproductions.worker_id,
            worker_incarnation = claim_reproductions.incarnation, lease_expires_at = now() + lease,
            started_at = now(), error = NULL
         WHERE x.id = r.id
        RETURNING x.* INTO r;
        RETURN QUERY
            SELECT r.id, r.build_key, r.attempt, b.spec, b.provenance, r.original_sha256, r.original_worker_id
              FROM cbs.builds b WHERE b.build_key = r.build_key;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION cbs.claim_reproductions(text, int, interval, text) IS
    'Claims up to max_count queued reproductions of builds another worker built, oldest first, skipping rows others hold; none while a runnable request build waits.';

CREATE OR REPLACE FUNCTION cbs.heartbeat_reproductions(worker_id text, lease interval, incarnation text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE cbs.reproductions x SET lease_expires_at = now() + lease
     WHERE x.status = 'running' AND x.worker_id = heartbeat_reproductions.worker_id
       AND (heartbeat_reproductions.incarnation IS NULL OR x.worker_incarnation = heartbeat_reproductions.incarnation);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.heartbeat_reproductions(text, interval, text) IS
    'Extends the leases of the reproductions the worker (that incarnation of it, when given) runs; returns how many.';

-- Fenced: the outcome of the current attempt of the current owner. Returns
-- 'reproduced' or 'mismatch', NULL when fenced out.
CREATE OR REPLACE FUNCTION cbs.finish_reproduction(id bigint, attempt int, worker_id text, sha256 text, detail jsonb DEFAULT '{}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r cbs.reproductions;
BEGIN
    IF sha256 IS NULL OR sha256 !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'CB422', MESSAGE = 'sha256 must be 64 lowercase hex digits';
    END IF;
    UPDATE cbs.reproductions x SET
        status = CASE WHEN x.original_sha256 = finish_reproduction.sha256 THEN 'reproduced' ELSE 'mismatch' END,
        reproduced_sha256 = finish_reproduction.sha256, detail = coalesce(finish_reproduction.detail, '{}'),
        error = NULL, worker_id = finish_reproduction.worker_id, lease_expires_at = NULL, finished_at = now()
     WHERE x.id = finish_reproduction.id AND x.status = 'running'
       AND x.attempt = finish_reproduction.attempt AND x.worker_id = finish_reproduction.worker_id
    RETURNING x.* INTO r;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('cbs_reproduction_finished', r.build_key);
    RETURN r.status;
END;
$$;
COMMENT ON FUNCTION cbs.finish_reproduction(bigint, int, text, text, jsonb) IS
    'Fenced: records the reproducing worker''s sha256 and decides reproduced or mismatch against the original''s; NULL if the caller no longer owns the attempt.';

-- Fenced. A retryable failure with attempts left goes back to the queue with
-- backoff; anything else ends the reproduction as 'failed' with its reason.
-- Returns the new status, NULL when fenced out.
CREATE OR REPLACE FUNCTION cbs.fail_reproduction(id bigint, attempt int, worker_id text, error text, retryable boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r cbs.reproductions;
BEGIN
    SELECT * INTO r FROM cbs.reproductions x
     WHERE x.id = fail_reproduction.id AND x.status = 'running'
       AND x.attempt = fail_reproduction.attempt AND x.worker_id = fail_reproduction.worker_id
     FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF retryable AND r.attempt < r.max_attempts THEN
        UPDATE cbs.reproductions x SET
            status = 'queued', error = fail_reproduction.error, worker_id = NULL, worker_incarnation = NULL,
            lease_expires_at = NULL, run_after = now() + cbs.retry_backoff(r.attempt)
         WHERE x.id = r.id;
        PERFORM pg_notify('cbs_reproduction_queued', r.build_key);
        RETURN 'queued';
    END IF;
    UPDATE cbs.reproductions x SET
        status = 'failed', error = fail_reproduction.error, worker_id = fail_reproduction.worker_id,
        lease_expires_at = NULL, finished_at = now()
     WHERE x.id = r.id;
    -- A failed row keeps the worker that tried, for the record; the CHECK ties
    -- worker_id to 'running' only together with a lease.
    PERFORM pg_notify('cbs_reproduction_finished', r.build_key);
    RETURN 'failed';
END;
$$;
COMMENT ON FUNCTION cbs.fail_reproduction(bigint, int, text, text, boolean) IS
    'Fenced: a retryable failure with attempts left re-queues the reproduction with backoff, anything else ends it failed with the reason.';

-- A draining or preempted worker hands its reproductions back at once; the
-- attempt does not count (max_attempts grows by one, attempt numbers only grow).
CREATE OR REPLACE FUNCTION cbs.release_reproductions(worker_id text, reason text)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    k text;
    n int := 0;
BEGIN
    FOR k IN
        UPDATE cbs.reproductions x SET
            status = 'queued', max_attempts = x.max_attempts + 1, error = reason, worker_id = NULL,
            worker_incarnation = NULL, lease_expires_at = NULL, run_after = now()
         WHERE x.status = 'running' AND x.worker_id = release_reproductions.worker_id
        RETURNING x.build_key
    LOOP
        PERFORM pg_notify('cbs_reproduction_queued', k);
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.release_reproductions(text, text) IS
    'A draining or preempted worker hands its reproductions back at once; the attempt does not count.';

-- Janitor: a reproduction whose worker stopped renewing its lease goes back to
-- the queue (another worker, or the same one restarted, takes it), or fails for
-- good past max_attempts.
CREATE OR REPLACE FUNCTION cbs.rescue_expired_reproductions()
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r cbs.reproductions;
    n int := 0;
    msg text;
BEGIN
    FOR r IN
        SELECT * FROM cbs.reproductions x
         WHERE x.status = 'running' AND x.lease_expires_at < now()
         ORDER BY x.lease_expires_at LIMIT 1000
         FOR UPDATE SKIP LOCKED
    LOOP
        msg := format('lease expired on worker %s during attempt %s', r.worker_id, r.attempt);
        IF r.attempt >= r.max_attempts THEN
            UPDATE cbs.reproductions x SET status = 'failed', error = msg || format(' (all %s attempts used)', r.max_attempts),
                lease_expires_at = NULL, finished_at = now()
             WHERE x.id = r.id;
            PERFORM pg_notify('cbs_reproduction_finished', r.build_key);
        ELSE
            UPDATE cbs.reproductions x SET status = 'queued', error = msg, worker_id = NULL,
                worker_incarnation = NULL, lease_expires_at = NULL, run_after = now()
             WHERE x.id = r.id;
            PERFORM pg_notify('cbs_reproduction_queued', r.build_key);
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.rescue_expired_reproductions() IS
    'Janitor: re-queues reproductions whose lease expired (failed past max_attempts); returns how many.';

-- Where a build falls in [0, 1): the first 32 bits of its key (a sha256, so
-- uniform). Sampling by key instead of random() makes a janitor run idempotent:
-- the same builds are picked however often it runs.
CREATE OR REPLACE FUNCTION cbs.sample_point(build_key text)
RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT (('x' || substr(build_key, 1, 8))::bit(32)::bigint & 4294967295) / 4294967296.0
$$;
COMMENT ON FUNCTION cbs.sample_point(text) IS
    'A build key''s place in [0, 1) for sampling: its first 32 bits over 2^32.';

-- Janitor policy: the share of builds that succeeded within `recent` gets a
-- reproduction, if it never had one of this artifact. Bounded per run.
CREATE OR REPLACE FUNCTION cbs.sample_reproductions(share float8, recent interval, max_count int DEFAULT 100)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
    n int := 0;
BEGIN
    IF share IS NULL OR share <= 0 THEN
        RETURN 0;
    END IF;
    FOR b IN
        SELECT * FROM cbs.builds x
         WHERE x.status = 'succeeded' AND x.finished_at >= now() - recent
           AND cbs.sample_point(x.build_key) < share
           AND coalesce(x.provenance->>'go_mod', '') <> '' AND cbs.original_worker(x) IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM cbs.reproductions r
                            WHERE r.build_key = x.build_key AND r.original_sha256 = x.artifact->>'sha256')
         ORDER BY x.finished_at
         LIMIT greatest(max_count, 0)
    LOOP
        PERFORM cbs.request_reproduction(b.build_key, 'janitor');
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.sample_reproductions(float8, interval, int) IS
    'Janitor: queues reproductions for the given share of builds that succeeded within `recent` (sampled by key) and were never reproduced; returns how many.';

CREATE OR REPLACE VIEW cbs.reproduction_mismatches AS
SELECT r.build_key, r.id AS reproduction_id, r.original_sha256, r.original_worker_id,
       r.reproduced_sha256, r.worker_id AS reproducing_worker_id, r.requested_by,
       r.detail->>'go_version' AS reproducing_go_version, b.provenance->>'go_version' AS original_go_version,
       r.detail->'inputs_changed' AS inputs_changed, r.finished_at, b.spec
  FROM cbs.reproductions r
  JOIN cbs.builds b ON b.build_key = r.build_key
 WHERE r.status = 'mismatch'
 ORDER BY r.finished_at DESC;
COMMENT ON VIEW cbs.reproduction_mismatches IS
    'Reproductions whose binary differed from the published one: both hashes, both workers, both Go versions, newest first.';
