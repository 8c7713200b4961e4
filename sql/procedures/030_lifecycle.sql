-- A build's life on a worker: claim, heartbeat, then complete, fail or release.
-- Every call after the claim is fenced by (build_key, attempt, worker_id): a worker
-- whose lease was taken away can no longer change the build.

CREATE OR REPLACE FUNCTION cbs.claim_builds(worker_id text, max_count int, lease interval)
RETURNS SETOF cbs.builds LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT b.build_key FROM cbs.builds b
         WHERE b.status = 'queued' AND b.run_after <= now()
         ORDER BY b.created_at, b.build_key
         LIMIT greatest(max_count, 0)
         FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE cbs.builds b SET
            status = 'building', attempt = b.attempt + 1, worker_id = claim_builds.worker_id,
            lease_expires_at = now() + lease, started_at = now(), error = NULL, updated_at = now()
          FROM picked WHERE b.build_key = picked.build_key
        RETURNING b.*
    ), logged AS (
        INSERT INTO cbs.build_attempts (build_key, attempt, worker_id)
        SELECT c.build_key, c.attempt, c.worker_id FROM claimed c
    )
    SELECT * FROM claimed;
END;
$$;
COMMENT ON FUNCTION cbs.claim_builds(text, int, interval) IS
    'Claims up to max_count runnable builds, oldest first, skipping rows other workers hold.';

CREATE OR REPLACE FUNCTION cbs.heartbeat(worker_id text, lease interval)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE cbs.workers w SET last_seen_at = now() WHERE w.worker_id = heartbeat.worker_id;
    UPDATE cbs.builds b SET lease_expires_at = now() + lease, updated_at = now()
     WHERE b.status = 'building' AND b.worker_id = heartbeat.worker_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.heartbeat(text, interval) IS
    'Extends the leases of every build the worker holds; returns how many it holds.';

CREATE OR REPLACE FUNCTION cbs.complete_build(build_key text, attempt int, worker_id text, artifact jsonb)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_provenance jsonb := artifact->'provenance';
BEGIN
    IF artifact IS NULL OR jsonb_typeof(artifact) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'artifact must be a JSON object';
    END IF;
    UPDATE cbs.builds b SET
        status = 'succeeded', artifact = complete_build.artifact - 'provenance',
        provenance = v_provenance, error = NULL,
        worker_id = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
     WHERE b.build_key = complete_build.build_key AND b.status = 'building'
       AND b.attempt = complete_build.attempt AND b.worker_id = complete_build.worker_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM cbs.close_attempt(build_key, 'succeeded');
    PERFORM pg_notify('cbs_build_finished', build_key);
    RETURN true;
END;
$$;
COMMENT ON FUNCTION cbs.complete_build(text, int, text, jsonb) IS
    'Fenced: marks the current attempt succeeded with its artifact (provenance kept apart); false if the caller no longer owns it.';

-- Returns the build's new status ('queued' for a scheduled retry, 'failed'), or NULL when fenced out.
CREATE OR REPLACE FUNCTION cbs.fail_build(build_key text, attempt int, worker_id text, error text, retryable boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
BEGIN
    SELECT * INTO b FROM cbs.builds x
     WHERE x.build_key = fail_build.build_key AND x.status = 'building'
       AND x.attempt = fail_build.attempt AND x.worker_id = fail_build.worker_id
     FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF retryable AND b.attempt < b.max_attempts THEN
        PERFORM cbs.close_attempt(b.build_key, 'retried', error);
        UPDATE cbs.builds x SET
            status = 'queued', error = fail_build.error, worker_id = NULL, lease_expires_at = NULL,
            run_after = now() + cbs.retry_backoff(b.attempt), updated_at = now()
         WHERE x.build_key = b.build_key;
        -- Wakes idle workers; the one that claims it will respect run_after.
        PERFORM pg_notify('cbs_build_queued', b.build_key);
        RETURN 'queued';
    END IF;
    PERFORM cbs.close_attempt(b.build_key, 'failed', error);
    UPDATE cbs.builds x SET
        status = 'failed', error = fail_build.error, worker_id = NULL, lease_expires_at = NULL,
        finished_at = now(), updated_at = now()
     WHERE x.build_key = b.build_key;
    PERFORM pg_notify('cbs_build_finished', b.build_key);
    RETURN 'failed';
END;
$$;
COMMENT ON FUNCTION cbs.fail_build(text, int, text, text, boolean) IS
    'Fenced: a retryable failure with attempts left re-queues with exponential backoff, anything else fails terminally.';

CREATE OR REPLACE FUNCTION cbs.release_worker(worker_id text, reason text)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    k text;
    n int := 0;
BEGIN
    FOR k IN
        UPDATE cbs.builds b SET
            status = 'queued', attempt = b.attempt - 1, worker_id = NULL, lease_expires_at = NULL,
            run_after = now(), updated_at = now()
         WHERE b.status = 'building' AND b.worker_id = release_worker.worker_id
        RETURNING b.build_key
    LOOP
        PERFORM cbs.close_attempt(k, 'released', reason);
        PERFORM pg_notify('cbs_build_queued', k);
        n := n + 1;
    END LOOP;
    UPDATE cbs.workers w SET stopped_at = now(), stop_reason = reason
     WHERE w.worker_id = release_worker.worker_id;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.release_worker(text, text) IS
    'A draining or preempted worker hands its builds back at once; the attempt does not count.';
