-- Entry points that create or revive builds: submit (deduplicating on the build
-- key), admin requeue and cancel. Each state change sends its NOTIFY in the same
-- transaction, so listeners hear of it exactly when it becomes visible.

CREATE OR REPLACE FUNCTION cbs.submit_build(spec jsonb, force boolean DEFAULT false)
RETURNS cbs.builds LANGUAGE plpgsql AS $$
DECLARE
    v_spec jsonb := cbs.canonical_spec(spec);
    v_key  text := encode(sha256(convert_to(v_spec::text, 'UTF8')), 'hex');
    b      cbs.builds;
BEGIN
    INSERT INTO cbs.builds (build_key, spec) VALUES (v_key, v_spec)
    ON CONFLICT (build_key) DO NOTHING
    RETURNING * INTO b;
    IF FOUND THEN
        PERFORM pg_notify('cbs_build_queued', v_key);
        RETURN b;
    END IF;

    SELECT * INTO b FROM cbs.builds WHERE build_key = v_key FOR UPDATE;
    IF force AND b.status IN ('failed', 'cancelled') THEN
        RETURN cbs.requeue(v_key);
    END IF;
    UPDATE cbs.builds SET last_requested_at = now() WHERE build_key = v_key RETURNING * INTO b;
    RETURN b;
END;
$$;
COMMENT ON FUNCTION cbs.submit_build(jsonb, boolean) IS
    'Validates and enqueues a build; returns the existing build for a known key (a failed or cancelled one is re-queued only with force).';

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
        status = 'queued', attempt = 0, run_after = now(), error = NULL, artifact = NULL,
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
