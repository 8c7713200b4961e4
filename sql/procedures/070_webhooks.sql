-- Per-build webhooks (callback_url). A registration is a row of
-- cbs.webhook_deliveries; the elected janitor claims due rows with a lease,
-- POSTs the build's status, and records the outcome fenced by the attempt
-- number, so a crashed janitor's claim simply expires and is taken over.

-- Registers url to be told when build_key ends. Registering the same url again
-- while its delivery is still open is a no-op. For a build that has already
-- ended, the janitor is woken through cbs_build_finished (receivers of that
-- channel re-read state, so the extra wake-up is harmless).
CREATE OR REPLACE FUNCTION cbs.add_callback(build_key text, url text)
RETURNS bigint LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_status text;
    v_id bigint;
BEGIN
    SELECT b.status INTO v_status FROM cbs.builds b WHERE b.build_key = add_callback.build_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('no build with key %s', build_key);
    END IF;
    IF url IS NULL OR url !~ '^https?://[^/\s]+' OR length(url) > 2048 THEN
        RAISE EXCEPTION USING ERRCODE = 'CB422',
            MESSAGE = format('callback_url must be an http:// or https:// URL of at most 2048 characters, not %L', left(url, 100));
    END IF;
    INSERT INTO cbs.webhook_deliveries (build_key, url)
    VALUES (add_callback.build_key, add_callback.url)
    ON CONFLICT (build_key, url) WHERE delivered_at IS NULL AND gave_up_at IS NULL DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT d.id INTO v_id FROM cbs.webhook_deliveries d
         WHERE d.build_key = add_callback.build_key AND d.url = add_callback.url
           AND d.delivered_at IS NULL AND d.gave_up_at IS NULL;
    END IF;
    IF v_status IN ('succeeded', 'failed', 'cancelled') THEN
        PERFORM pg_notify('cbs_build_finished', build_key);
    END IF;
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION cbs.add_callback(text, text) IS
    'Registers a callback URL that is POSTed the build''s status when it ends; returns the delivery id.';

-- Claims up to max_count due deliveries of ended builds for janitor_id, for lease.
-- Each claim counts as an attempt; the returned attempt fences the result.
CREATE OR REPLACE FUNCTION cbs.claim_webhook_deliveries(janitor_id text, max_count int, lease interval)
RETURNS TABLE (id bigint, build_key text, url text, attempt int) LANGUAGE sql AS $$
    WITH picked AS (
        SELECT d.id FROM cbs.webhook_deliveries d
          JOIN cbs.builds b ON b.build_key = d.build_key
         WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL
           AND d.next_attempt_at <= now()
           AND (d.locked_until IS NULL OR d.locked_until < now())
           AND b.status IN ('succeeded', 'failed', 'cancelled')
         ORDER BY d.next_attempt_at, d.id
         LIMIT greatest(claim_webhook_deliveries.max_count, 0)
         FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE cbs.webhook_deliveries d SET
        attempts = d.attempts + 1,
        locked_by = claim_webhook_deliveries.janitor_id,
        locked_until = now() + claim_webhook_deliveries.lease
      FROM picked WHERE d.id = picked.id
    RETURNING d.id, d.build_key, d.url, d.attempts
$$;
COMMENT ON FUNCTION cbs.claim_webhook_deliveries(text, int, interval) IS
    'Janitor: claims due webhook deliveries of ended builds with a lease; each claim is one attempt.';

-- Records the outcome of attempt `attempt` of delivery `id`. Returns 'delivered',
-- 'retry' (scheduled after an exponential backoff between backoff_min and
-- backoff_max), 'gave_up' (max_attempts used), or NULL when the attempt was no
-- longer the current one (its claim had expired and was taken over).
CREATE OR REPLACE FUNCTION cbs.record_webhook_attempt(
    id bigint, attempt int, delivered boolean, status_code int, error text,
    max_attempts int, backoff_min interval, backoff_max interval)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text;
BEGIN
    v_outcome := CASE WHEN delivered THEN 'delivered'
                      WHEN attempt >= max_attempts THEN 'gave_up'
                      ELSE 'retry' END;
    UPDATE cbs.webhook_deliveries d SET
        locked_by = NULL, locked_until = NULL,
        last_status_code = record_webhook_attempt.status_code,
        last_error = record_webhook_attempt.error,
        delivered_at = CASE WHEN v_outcome = 'delivered' THEN now() END,
        gave_up_at = CASE WHEN v_outcome = 'gave_up' THEN now() END,
        next_attempt_at = CASE WHEN v_outcome = 'retry'
            THEN now() + least(backoff_min * power(2, greatest(record_webhook_attempt.attempt, 1) - 1), backoff_max)
            ELSE d.next_attempt_at END
     WHERE d.id = record_webhook_attempt.id AND d.attempts = record_webhook_attempt.attempt
       AND d.delivered_at IS NULL AND d.gave_up_at IS NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN v_outcome;
END;
$$;
COMMENT ON FUNCTION cbs.record_webhook_attempt(bigint, int, boolean, int, text, int, interval, interval) IS
    'Janitor: fenced record of one webhook attempt (delivered, retry with backoff, or gave up).';

-- When the next delivery of an ended build becomes due (a retry or an expired
-- claim), so the janitor can sleep until then instead of polling.
CREATE OR REPLACE FUNCTION cbs.next_webhook_due()
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT min(greatest(d.next_attempt_at, coalesce(d.locked_until, d.next_attempt_at)))
      FROM cbs.webhook_deliveries d
      JOIN cbs.builds b ON b.build_key = d.build_key
     WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL
       AND b.status IN ('succeeded', 'failed', 'cancelled')
$$;
COMMENT ON FUNCTION cbs.next_webhook_due() IS
    'Janitor: the earliest time an open delivery of an ended build may be attempted (NULL: none).';

CREATE OR REPLACE VIEW cbs.pending_webhooks AS
SELECT d.id, d.build_key, b.status AS build_status, d.url, d.attempts, d.next_attempt_at,
       d.locked_by, d.locked_until, d.last_status_code, d.last_error, d.created_at
  FROM cbs.webhook_deliveries d
  JOIN cbs.builds b ON b.build_key = d.build_key
 WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL
 ORDER BY d.next_attempt_at, d.id;
COMMENT ON VIEW cbs.pending_webhooks IS 'Webhook deliveries not yet acknowledged nor given up, next due first.';
