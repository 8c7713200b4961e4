-- A build's life on a worker: claim, heartbeat, then complete, fail or release.
-- Every call after the claim is fenced by (build_key, attempt, worker_id): a worker
-- whose lease was taken away can no longer change the build.

-- Fair claiming. Runnable builds go out by priority class first (every runnable
-- 'request' build before any 'background' one), then client by client: the client
-- whose last build started longest ago is next (one that never started comes
-- first; builds without a client form the group ''), and within a client its
-- oldest build (created_at, build_key). A call for several builds takes the
-- clients in turn (round-robin) instead of several builds of the first one.
--
-- It stays cheap with thousands of queued builds: the clients with queued work are
-- found by skipping from client to client through builds_queued_fair_idx (one index
-- descent each; there are few), and every pick is the head of one client's slice of
-- that index, locked FOR UPDATE SKIP LOCKED, so only claimed rows are locked and a
-- row another claimer holds is passed over for that client's next one. No sort of
-- the queue, no window function next to the row lock.
--
-- A client's turn is recorded in cbs.clients.last_started_at (the clock time of each
-- claim, so the order of several claims in one call carries over to the next call),
-- once at the end and in client order: concurrent claimers take those row locks in
-- the same order and never wait on each other in a cycle. Two claimers that run at
-- the same moment may both serve the same client once, before either has recorded it.
-- The three-argument form of earlier versions; the one below takes its calls.
DROP FUNCTION IF EXISTS cbs.claim_builds(text, int, interval);

-- incarnation: the claiming process's (cbs.workers.incarnation), which its
-- heartbeats renew; NULL from psql.
CREATE OR REPLACE FUNCTION cbs.claim_builds(worker_id text, max_count int, lease interval, incarnation text DEFAULT NULL)
RETURNS SETOF cbs.builds LANGUAGE plpgsql AS $$
DECLARE
    v_class   text;
    v_turns   text[];               -- the class's clients, in claim order
    v_next    text[];               -- those that had a build this round
    v_client  text;
    v_started text[] := '{}';       -- the client of every claim, and when
    v_at      timestamptz[] := '{}';
    v_left    int := greatest(max_count, 0);
    b         cbs.builds;
BEGIN
    FOREACH v_class IN ARRAY ARRAY['request', 'background'] LOOP
        EXIT WHEN v_left = 0;
        -- Each client's oldest queued build (a loose index scan), ordered by turn.
        WITH RECURSIVE heads AS (
            (SELECT coalesce(x.client, '') AS client, x.created_at, x.build_key
               FROM cbs.builds x
              WHERE x.status = 'queued' AND x.priority = v_class
              ORDER BY coalesce(x.client, ''), x.created_at, x.build_key LIMIT 1)
            UNION ALL
            SELECT n.* FROM heads h CROSS JOIN LATERAL (
                SELECT coalesce(x.client, ''), x.created_at, x.build_key
                  FROM cbs.builds x
                 WHERE x.status = 'queued' AND x.priority = v_class AND coalesce(x.client, '') > h.client
                 ORDER BY coalesce(x.client, ''), x.created_at, x.build_key LIMIT 1) n
        )
        SELECT coalesce(array_agg(h.client ORDER BY c.last_started_at NULLS FIRST, h.created_at, h.build_key), '{}')
          INTO v_turns
          FROM heads h LEFT JOIN cbs.clients c ON c.client = h.client;

        -- Round-robin over those clients until the class runs out or we have enough.
        WHILE v_left > 0 AND cardinality(v_turns) > 0 LOOP
            v_next := '{}';
            FOREACH v_client IN ARRAY v_turns LOOP
                EXIT WHEN v_left = 0;
                SELECT x.* INTO b FROM cbs.builds x
                 WHERE x.status = 'queued' AND x.priority = v_class AND coalesce(x.client, '') = v_client
                   AND x.run_after <= now()
                 ORDER BY coalesce(x.client, ''), x.created_at, x.build_key
                 LIMIT 1 FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                UPDATE cbs.builds x SET
                    status = 'building', attempt = x.attempt + 1, worker_id = claim_builds.worker_id,
                    worker_incarnation = claim_builds.incarnation, lease_expires_at = now() + lease, started_at = now(), error = NULL, updated_at = now()
                 WHERE x.build_key = b.build_key
                RETURNING x.* INTO b;
                INSERT INTO cbs.build_attempts (build_key, attempt, worker_id)
                VALUES (b.build_key, b.attempt, b.worker_id);
                RETURN NEXT b;
                v_left := v_left - 1;
                v_next := v_next || v_client;
                v_started := v_started || v_client;
                v_at := v_at || clock_timestamp();
            END LOOP;
            v_turns := v_next;
        END LOOP;
    END LOOP;

    IF cardinality(v_started) > 0 THEN
        INSERT INTO cbs.clients AS c (client, last_started_at)
        SELECT s.client, max(s.at) FROM unnest(v_started, v_at) s(client, at)
         GROUP BY s.client ORDER BY s.client
        ON CONFLICT ON CONSTRAINT clients_pkey DO UPDATE
           SET last_started_at = greatest(c.last_started_at, excluded.last_started_at);
    END IF;
END;
$$;
COMMENT ON FUNCTION cbs.claim_builds(text, int, interval, text) IS
    'Claims up to max_count runnable builds, skipping rows other workers hold: request before background, then clients in turn (last build started longest ago first, round-robin within one call), oldest first within a client.';

DROP FUNCTION IF EXISTS cbs.heartbeat(text, interval);

-- With an incarnation, only that process's builds are renewed: those an earlier
-- process of the same worker id held must run out, not live on.
CREATE OR REPLACE FUNCTION cbs.heartbeat(worker_id text, lease interval, incarnation text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE cbs.workers w SET last_seen_at = now() WHERE w.worker_id = heartbeat.worker_id;
    UPDATE cbs.builds b SET lease_expires_at = now() + lease, updated_at = now()
     WHERE b.status = 'building' AND b.worker_id = heartbeat.worker_id
       AND (heartbeat.incarnation IS NULL OR b.worker_incarnation = heartbeat.incarnation);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.heartbeat(text, interval, text) IS
    'Extends the leases of the builds the worker (that incarnation of it, when given) holds; returns how many.';

CREATE OR REPLACE FUNCTION cbs.complete_build(build_key text, attempt int, worker_id text, artifact jsonb)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_provenance jsonb := artifact->'provenance';
BEGIN
    IF artifact IS NULL OR jsonb_typeof(artifact) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'CB422', MESSAGE = 'artifact must be a JSON object';
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
    IF retryable AND b.attempt - b.uncounted_attempts < b.max_attempts THEN
        PERFORM cbs.close_attempt(b.build_key, 'retried', error);
        UPDATE cbs.builds x SET
            status = 'queued', error = fail_build.error, worker_id = NULL, lease_expires_at = NULL,
            run_after = now() + cbs.retry_backoff(b.attempt - b.uncounted_attempts), updated_at = now()
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
            status = 'queued', uncounted_attempts = b.uncounted_attempts + 1, worker_id = NULL, lease_expires_at = NULL,
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
