-- Builds whose worker is gone: its lease ran out (the janitor's rescue), or the
-- worker started again under the same id (cbs.register_worker). The attempt was
-- lost and counts; the build goes back to the queue, or fails for good once it
-- has used up its attempts.

-- Ends the lost attempt of b (a building row the caller has locked).
CREATE OR REPLACE FUNCTION cbs.end_lost_attempt(b cbs.builds, msg text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cbs.close_attempt(b.build_key, 'expired', msg);
    IF b.attempt - b.uncounted_attempts >= b.max_attempts THEN
        UPDATE cbs.builds x SET
            status = 'failed', error = msg || format(' (all %s attempts used)', b.max_attempts),
            worker_id = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
         WHERE x.build_key = b.build_key;
        PERFORM pg_notify('cbs_build_finished', b.build_key);
    ELSE
        UPDATE cbs.builds x SET
            status = 'queued', error = msg, worker_id = NULL, lease_expires_at = NULL,
            run_after = now(), updated_at = now()
         WHERE x.build_key = b.build_key;
        PERFORM pg_notify('cbs_build_queued', b.build_key);
    END IF;
END;
$$;
COMMENT ON FUNCTION cbs.end_lost_attempt(cbs.builds, text) IS
    'Ends a building attempt whose worker is gone: re-queued, or failed for good past max_attempts.';

CREATE OR REPLACE FUNCTION cbs.rescue_expired()
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
    n int := 0;
BEGIN
    FOR b IN
        SELECT * FROM cbs.builds x
         WHERE x.status = 'building' AND x.lease_expires_at < now()
         ORDER BY x.lease_expires_at
         LIMIT 1000
         FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM cbs.end_lost_attempt(b, format('lease expired on worker %s during attempt %s', b.worker_id, b.attempt));
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.rescue_expired() IS
    'Janitor: re-queues builds whose lease expired (terminal failure past max_attempts); returns how many.';
