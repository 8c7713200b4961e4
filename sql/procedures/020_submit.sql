-- Entry points that create or revive builds: submit (deduplicating on the build
-- key), admin requeue and cancel. Each state change sends its NOTIFY in the same
-- transaction, so listeners hear of it exactly when it becomes visible.

-- The two-argument form of earlier versions; the one below takes its calls.
DROP FUNCTION IF EXISTS cbs.submit_build(jsonb, boolean);

-- client and limits: who asks and what they may spend (cbs.admit); without them
-- (a psql admin) nothing is charged. Whether the call created work (and so was
-- charged) is left in the transaction's setting cbs.submit_created for the
-- caller's metrics. priority: background work (prebuilds,
-- reproductions) never runs ahead of a request, and a request that joins a
-- queued background build lifts it to request priority.
CREATE OR REPLACE FUNCTION cbs.submit_build(
    spec jsonb, force boolean DEFAULT false, client text DEFAULT NULL, limits jsonb DEFAULT NULL,
    priority text DEFAULT 'request')
RETURNS cbs.builds LANGUAGE plpgsql AS $$
DECLARE
    v_spec jsonb := cbs.canonical_spec(spec);
    v_key  text := cbs.canonical_key(v_spec);
    b      cbs.builds;
    v_new  boolean;
BEGIN
    IF submit_build.priority IS NULL OR submit_build.priority NOT IN ('request', 'background') THEN
        RAISE EXCEPTION USING ERRCODE = 'CB422',
            MESSAGE = format('priority must be request or background, not %L', submit_build.priority);
    END IF;
    -- Demand, for prebuilding the popular specs (sql/procedures/065_prebuild.sql).
    IF submit_build.priority = 'request' THEN
        PERFORM cbs.note_request(v_key);
    END IF;
    INSERT INTO cbs.builds (build_key, spec, client, priority)
    VALUES (v_key, v_spec, submit_build.client, submit_build.priority)
    ON CONFLICT (build_key) DO NOTHING
    RETURNING * INTO b;
    v_new := FOUND;
    PERFORM set_config('cbs.submit_created', v_new::text, true);
    IF v_new THEN
        IF submit_build.client IS NOT NULL AND submit_build.limits IS NOT NULL THEN
            PERFORM cbs.admit(submit_build.client, submit_build.limits);
        END IF;
        PERFORM pg_notify('cbs_build_queued', v_key);
        RETURN b;
    END IF;

    SELECT * INTO b FROM cbs.builds x WHERE x.build_key = v_key FOR UPDATE;
    IF force AND b.status IN ('failed', 'cancelled') THEN
        PERFORM set_config('cbs.submit_created', 'true', true);
        PERFORM cbs.requeue(v_key);
        UPDATE cbs.builds x SET client = submit_build.client, priority = submit_build.priority
         WHERE x.build_key = v_key RETURNING * INTO b;
        IF submit_build.client IS NOT NULL AND submit_build.limits IS NOT NULL THEN
            PERFORM cbs.admit(submit_build.client, submit_build.limits);
        END IF;
        RETURN b;
    END IF;
    UPDATE cbs.builds x SET
        last_requested_at = now(),
        priority = CASE WHEN x.status = 'queued' AND submit_build.priority = 'request' THEN 'request' ELSE x.priority END
     WHERE x.build_key = v_key RETURNING * INTO b;
    RETURN b;
END;
$$;
COMMENT ON FUNCTION cbs.submit_build(jsonb, boolean, text, jsonb, text) IS
    'Validates and enqueues a build, charging client when it creates work; returns the existing build for a known key (a failed or cancelled one is re-queued only with force).';

CREATE OR REPLACE FUNCTION cbs.requeue(build_key text)
RETURNS cbs.builds LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
BEGIN
    SELECT * INTO b FROM cbs.builds WHERE builds.build_key = requeue.build_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('build %s not found', requeue.build_key);
    END IF;
    IF b.status IN ('queued', 'building') THEN
        RETURN b;
    END IF;
    UPDATE cbs.builds SET
        status = 'queued', uncounted_attempts = b.attempt, run_after = now(), error = NULL, artifact = NULL,
        provenance = NULL, started_at = NULL, finished_at = NULL,
        last_requested_at = now(), updated_at = now()
    WHERE builds.build_key = requeue.build_key
    RETURNING * INTO b;
    PERFORM pg_notify('cbs_build_queued', b.build_key);
    RETURN b;
END;
$$;
COMMENT ON FUNCTION cbs.requeue(text) IS
    'Admin: builds a finished, failed or cancelled build again from scratch.';

CREATE OR REPLACE FUNCTION cbs.cancel_build(build_key text, reason text DEFAULT 'cancelled by an administrator')
RETURNS cbs.builds LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
BEGIN
    SELECT * INTO b FROM cbs.builds WHERE builds.build_key = cancel_build.build_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('build %s not found', cancel_build.build_key);
    END IF;
    IF b.status NOT IN ('queued', 'building') THEN
        RETURN b;
    END IF;
    IF b.status = 'building' THEN
        PERFORM cbs.close_attempt(b.build_key, 'cancelled', reason);
    END IF;
    UPDATE cbs.builds SET
        status = 'cancelled', error = coalesce(reason, 'cancelled'), worker_id = NULL,
        lease_expires_at = NULL, finished_at = now(), updated_at = now()
    WHERE builds.build_key = cancel_build.build_key
    RETURNING * INTO b;
    PERFORM pg_notify('cbs_build_cancelled', b.build_key);
    PERFORM pg_notify('cbs_build_finished', b.build_key);
    RETURN b;
END;
$$;
COMMENT ON FUNCTION cbs.cancel_build(text, text) IS
    'Admin: cancels a queued or running build; its worker hears cbs_build_cancelled and stops the container.';

-- The api found a succeeded build's binary missing from storage: the build is
-- queued again (as an administrator's requeue, charged to no one), so that the
-- next request joins its rebuild. Any other state is returned as is.
CREATE OR REPLACE FUNCTION cbs.artifact_lost(build_key text)
RETURNS cbs.builds LANGUAGE plpgsql AS $$
DECLARE
    b cbs.builds;
BEGIN
    SELECT * INTO b FROM cbs.builds x WHERE x.build_key = artifact_lost.build_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('build %s not found', artifact_lost.build_key);
    END IF;
    IF b.status <> 'succeeded' THEN
        RETURN b;
    END IF;
    RETURN cbs.requeue(artifact_lost.build_key);
END;
$$;
COMMENT ON FUNCTION cbs.artifact_lost(text) IS
    'Queues a succeeded build again whose binary is missing from storage (the api calls it when a download finds none).';
