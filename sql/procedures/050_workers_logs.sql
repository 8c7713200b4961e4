-- Worker registry and build logs: the worker writes through these so that the
-- tables stay private and log appends are fenced like every other write.

CREATE OR REPLACE FUNCTION cbs.register_worker(worker_id text, host text, version text, max_jobs int, info jsonb DEFAULT '{}')
RETURNS void LANGUAGE sql AS $$
    INSERT INTO cbs.workers (worker_id, host, version, max_jobs, info)
    VALUES (worker_id, host, version, max_jobs, coalesce(info, '{}'))
    ON CONFLICT (worker_id) DO UPDATE SET
        host = EXCLUDED.host, version = EXCLUDED.version, max_jobs = EXCLUDED.max_jobs,
        info = EXCLUDED.info, started_at = now(), last_seen_at = now(),
        stopped_at = NULL, stop_reason = NULL
$$;
COMMENT ON FUNCTION cbs.register_worker(text, text, text, int, jsonb) IS
    'A worker announces itself at start (and again after a restart with the same id).';

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
