-- Worker registry and build logs: the worker writes through these so that the
-- tables stay private and log appends are fenced like every other write.

DROP FUNCTION IF EXISTS cbs.register_worker(text, text, text, int, jsonb);

-- incarnation: the starting process's own (random, new at every start). Builds an
-- earlier incarnation of this worker id was running are lost (that process is
-- gone: a restart keeps the id) and are handed on at once, as if their lease ran out.
CREATE OR REPLACE FUNCTION cbs.register_worker(
    worker_id text, host text, version text, max_jobs int, info jsonb DEFAULT '{}', incarnation text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
BEGIN
    INSERT INTO cbs.workers AS w (worker_id, host, version, max_jobs, info, incarnation)
    VALUES (register_worker.worker_id, host, version, max_jobs, coalesce(info, '{}'), register_worker.incarnation)
    ON CONFLICT ON CONSTRAINT workers_pkey DO UPDATE SET
        host = EXCLUDED.host, version = EXCLUDED.version, max_jobs = EXCLUDED.max_jobs,
        info = EXCLUDED.info, incarnation = EXCLUDED.incarnation, started_at = now(), last_seen_at = now(),
        stopped_at = NULL, stop_reason = NULL;
    IF register_worker.incarnation IS NULL THEN
        RETURN;
    END IF;
    FOR b IN
        SELECT * FROM cbs.builds x
         WHERE x.status = 'building' AND x.worker_id = register_worker.worker_id
           AND x.worker_incarnation IS DISTINCT FROM register_worker.incarnation
         FOR UPDATE
    LOOP
        PERFORM cbs.end_lost_attempt(b, format('worker %s restarted during attempt %s', b.worker_id, b.attempt));
    END LOOP;
END;
$$;
COMMENT ON FUNCTION cbs.register_worker(text, text, text, int, jsonb, text) IS
    'A worker announces itself at start; builds an earlier process of the same id held are handed on at once.';

-- lines: a JSON array of {"step", "stream", "line"}. Returns how many were stored (0 when fenced).
CREATE OR REPLACE FUNCTION cbs.append_logs(build_key text, attempt int, worker_id text, lines jsonb)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    PERFORM 1 FROM cbs.builds b
     WHERE b.build_key = append_logs.build_key AND b.status = 'building'
       AND b.attempt = append_logs.attempt AND b.worker_id = append_logs.worker_id;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    INSERT INTO cbs.build_logs (build_key, attempt, step, stream, line)
    SELECT append_logs.build_key, append_logs.attempt, l->>'step',
           coalesce(l->>'stream', 'stdout'), coalesce(l->>'line', '')
      FROM jsonb_array_elements(lines) l;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('cbs_build_log', build_key);
    END IF;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.append_logs(text, int, text, jsonb) IS
    'Fenced: stores a batch of build output lines and wakes log followers (cbs_build_log).';
