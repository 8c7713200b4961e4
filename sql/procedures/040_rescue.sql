-- Janitor policy: builds whose worker vanished (its lease ran out) go back to the
-- queue, or fail for good once they have used up their attempts.

CREATE OR REPLACE FUNCTION cbs.rescue_expired()
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
    n int := 0;
    msg text;
BEGIN
    FOR b IN
        SELECT * FROM cbs.builds x
         WHERE x.status = 'building' AND x.lease_expires_at < now()
         ORDER BY x.lease_expires_at
         LIMIT 1000
         FOR UPDATE SKIP LOCKED
    LOOP
        msg := format('lease expired on worker %s during attempt %s', b.worker_id, b.attempt);
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
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.rescue_expired() IS
    'Janitor: re-queues builds whose lease expired (terminal failure past max_attempts); returns how many.';
