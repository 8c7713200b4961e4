-- Admission: a request that creates work (a new build, or a forced rebuild) is
-- charged to its client; cache hits and joins are free. The checks run inside
-- cbs.submit_build's transaction, after the build's row was inserted, so a refusal
-- rolls the insert back and several api hosts can never overshoot a limit: the
-- client's row in cbs.clients is locked while its bucket and open builds are read.
--
-- Limits come from the api (its config, or the token's own) as JSON, every key
-- optional, a missing or null one meaning no limit of that kind:
--   {"burst": 5, "per_hour": 10, "max_queued": 20, "max_queued_total": 1000,
--    "token_required": false}
-- A refusal raises SQLSTATE CB429 (or CB401 when a token is required) with the
-- human message, DETAIL = seconds until it may succeed, HINT = the limit's name
-- (rate, client_queue, total_queue, token_required).

CREATE OR REPLACE FUNCTION cbs.refuse(code text, reason text, retry_after_secs double precision, message text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, HINT = reason,
        DETAIL = greatest(ceil(retry_after_secs), 1)::bigint::text;
END;
$$;
COMMENT ON FUNCTION cbs.refuse(text, text, double precision, text) IS
    'Raises an admission refusal in the shape the api maps to 429/401 with Retry-After.';

-- Charges one new build to client, or raises a refusal. Must be called in the
-- transaction that created the build (whose row already counts as open). Each
-- check costs a bounded amount whatever the queue's length: counts stop one past
-- their limit, and the bucket is refilled, tested and charged in one upsert that
-- also locks the client's row.
CREATE OR REPLACE FUNCTION cbs.admit(client text, limits jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_burst      double precision := (limits->>'burst')::double precision;
    v_per_hour   double precision := (limits->>'per_hour')::double precision;
    v_max_open   bigint := (limits->>'max_queued')::bigint;
    v_max_total  bigint := (limits->>'max_queued_total')::bigint;
    v_level      double precision;
    v_open       bigint;
    c            cbs.clients;
BEGIN
    IF coalesce((limits->>'token_required')::boolean, false) THEN
        PERFORM cbs.refuse('CB401', 'token_required', 0,
            'this server builds new binaries only for API tokens (Authorization: Bearer <token>); '
            'downloads of existing builds need none');
    END IF;

    -- Refill (continuously, up to the burst) and take one token when there is one.
    -- The row is locked either way, which serialises this client's admissions on
    -- every api host: the counts below see every earlier admission that committed.
    IF v_burst IS NULL OR v_per_hour IS NULL THEN
        INSERT INTO cbs.clients AS x (client) VALUES (admit.client)
        ON CONFLICT ON CONSTRAINT clients_pkey DO NOTHING;
        PERFORM 1 FROM cbs.clients x WHERE x.client = admit.client FOR UPDATE;
    ELSE
        INSERT INTO cbs.clients AS x (client, tokens, tokens_at)
        VALUES (admit.client, v_burst - 1, clock_timestamp())
        ON CONFLICT ON CONSTRAINT clients_pkey DO UPDATE
           SET tokens = cbs.bucket_level(x.tokens, x.tokens_at, v_burst, v_per_hour) - 1, tokens_at = clock_timestamp()
         WHERE cbs.bucket_level(x.tokens, x.tokens_at, v_burst, v_per_hour) >= 1
        RETURNING * INTO c;
        IF NOT FOUND OR v_burst < 1 THEN
            SELECT * INTO c FROM cbs.clients x WHERE x.client = admit.client;
            v_level := cbs.bucket_level(c.tokens, c.tokens_at, v_burst, v_per_hour);
            IF v_per_hour <= 0 OR v_burst < 1 THEN
                PERFORM cbs.refuse('CB429', 'rate', 3600, format(
                    '%s may not start new builds (its limit is %s per hour with a burst of %s); '
                    'cached builds can still be downloaded', admit.client, v_per_hour, v_burst));
            END IF;
            PERFORM cbs.refuse('CB429', 'rate', (1 - v_level) / v_per_hour * 3600, format(
                '%s started too many new builds: the limit is %s per hour with a burst of %s; '
                'the next one is allowed in %s seconds (cached builds can still be downloaded)',
                admit.client, v_per_hour, v_burst, ceil((1 - v_level) / v_per_hour * 3600)::bigint));
        END IF;
    END IF;

    IF v_max_open IS NOT NULL THEN
        SELECT count(*) INTO v_open FROM (
            SELECT 1 FROM cbs.builds b
             WHERE b.client = admit.client AND b.status IN ('queued', 'building')
             LIMIT v_max_open + 1) o;
        IF v_open > v_max_open THEN
            PERFORM cbs.refuse('CB429', 'client_queue', 60, format(
                '%s already has %s builds queued or running (the limit is %s); retry when one of them finishes',
                admit.client, v_open - 1, v_max_open));
        END IF;
    END IF;

    IF v_max_total IS NOT NULL THEN
        -- One at a time across all clients, so that the total is exact: every
        -- admission that counted before this one has committed (and is counted).
        PERFORM pg_advisory_xact_lock(213188611);
        SELECT sum(q.builds) INTO v_open FROM cbs.queued_requests q;
        IF v_open > v_max_total THEN
            PERFORM cbs.refuse('CB429', 'total_queue', 60, format(
                'the build queue is full (%s builds waiting, the limit is %s); retry in a minute',
                v_open - 1, v_max_total));
        END IF;
    END IF;
END;
$$;
COMMENT ON FUNCTION cbs.admit(text, jsonb) IS
    'Charges one new build to a client or raises CB429/CB401: token bucket, then open-build caps.';

-- A bucket's level now: `tokens` as of `at` (NULL: full), refilled at per_hour up to burst.
-- The clock is read when called, not at the transaction's start: an admission that
-- waited for the client's row lock must see the time since the charge it waited
-- for, never a negative one (which would overstate the wait it reports).
CREATE OR REPLACE FUNCTION cbs.bucket_level(tokens double precision, at timestamptz, burst double precision, per_hour double precision)
RETURNS double precision LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN tokens IS NULL THEN burst
                ELSE least(burst, tokens + greatest(extract(epoch FROM clock_timestamp() - at)::double precision, 0)
                                           / 3600.0 * per_hour) END
$$;
COMMENT ON FUNCTION cbs.bucket_level(double precision, timestamptz, double precision, double precision) IS
    'A client''s token bucket level now, refilled continuously at per_hour up to burst.';

-- Adds admissions and refusals to the per-minute usage; the api counts them in
-- memory and sends them here about once a second, off the requests' path.
CREATE OR REPLACE FUNCTION cbs.record_usage(minute timestamptz, clients text[], admitted int[], refused int[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO cbs.client_usage AS u (minute, client, admitted, refused)
    SELECT date_trunc('minute', record_usage.minute), c.client, c.admitted, c.refused
      FROM unnest(clients, admitted, refused) AS c(client, admitted, refused)
    ON CONFLICT ON CONSTRAINT client_usage_pkey
    DO UPDATE SET admitted = u.admitted + excluded.admitted, refused = u.refused + excluded.refused
$$;
COMMENT ON FUNCTION cbs.record_usage(timestamptz, text[], int[], int[]) IS
    'Adds per-client admissions and refusals of one minute to cbs.client_usage (for cbs.heaviest_clients).';

-- Forgets what is older than keep: per-minute usage, and clients idle that long
-- (their bucket has long refilled, so no row means the same as theirs) with
-- nothing queued or running. Called by the janitor's retention job.
CREATE OR REPLACE FUNCTION cbs.prune_clients(keep interval DEFAULT interval '7 days')
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
    m int;
BEGIN
    DELETE FROM cbs.client_usage u WHERE u.minute < now() - keep;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM cbs.clients c
     WHERE greatest(c.tokens_at, coalesce(c.last_started_at, c.tokens_at)) < now() - keep
       AND NOT EXISTS (SELECT 1 FROM cbs.builds b
                        WHERE b.client = c.client AND b.status IN ('queued', 'building'));
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
END;
$$;
COMMENT ON FUNCTION cbs.prune_clients(interval) IS
    'Janitor: deletes client usage older than keep and clients idle that long; returns how many rows.';

-- API tokens. The token is made here from the server's strong random source and
-- returned once; only its sha256 is kept.
CREATE OR REPLACE FUNCTION cbs.create_token(
    name text, burst integer DEFAULT NULL, per_hour double precision DEFAULT NULL,
    max_queued integer DEFAULT NULL, max_held integer DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_token text := 'cbs_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
BEGIN
    IF EXISTS (SELECT 1 FROM cbs.api_tokens t WHERE t.name = create_token.name AND t.revoked_at IS NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'CB409', MESSAGE = format('a token named %L already exists', create_token.name);
    END IF;
    INSERT INTO cbs.api_tokens (name, token_sha256, burst, per_hour, max_queued, max_held)
    VALUES (create_token.name, encode(sha256(convert_to(v_token, 'UTF8')), 'hex'),
            create_token.burst, create_token.per_hour, create_token.max_queued, create_token.max_held);
    RETURN v_token;
END;
$$;
COMMENT ON FUNCTION cbs.create_token(text, integer, double precision, integer, integer) IS
    'Makes an API token with optional limits of its own (NULL: config defaults); returns it, the only time it is shown.';

CREATE OR REPLACE FUNCTION cbs.revoke_token(name text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cbs.api_tokens t SET revoked_at = now() WHERE t.name = revoke_token.name AND t.revoked_at IS NULL;
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION cbs.revoke_token(text) IS
    'Revokes the active token of that name at once on every api host; false when there is none.';

-- The active token with this sha256, if any; records its use at most once a minute.
CREATE OR REPLACE FUNCTION cbs.authenticate_token(token_sha256 text)
RETURNS SETOF cbs.api_tokens LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cbs.api_tokens t SET last_used_at = now()
     WHERE t.token_sha256 = authenticate_token.token_sha256 AND t.revoked_at IS NULL
       AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute');
    RETURN QUERY SELECT * FROM cbs.api_tokens t
     WHERE t.token_sha256 = authenticate_token.token_sha256 AND t.revoked_at IS NULL;
END;
$$;
COMMENT ON FUNCTION cbs.authenticate_token(text) IS
    'The active API token with this sha256 (none when unknown or revoked).';

-- Keeps cbs.queued_requests: +1 when a build becomes a queued request, -1 when it
-- stops being one (claimed, cancelled, lowered to background, deleted).
CREATE OR REPLACE FUNCTION cbs.count_queued_requests()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was  boolean := TG_OP <> 'INSERT' AND OLD.status = 'queued' AND OLD.priority = 'request';
    now_ boolean := TG_OP <> 'DELETE' AND NEW.status = 'queued' AND NEW.priority = 'request';
BEGIN
    IF was <> now_ THEN
        UPDATE cbs.queued_requests SET builds = builds + CASE WHEN now_ THEN 1 ELSE -1 END
         WHERE shard = pg_backend_pid() % 16;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION cbs.count_queued_requests() IS
    'Trigger: keeps cbs.queued_requests in step with the queued request builds of cbs.builds.';

CREATE OR REPLACE TRIGGER builds_count_queued_requests
    AFTER INSERT OR DELETE OR UPDATE OF status, priority ON cbs.builds
    FOR EACH ROW EXECUTE FUNCTION cbs.count_queued_requests();
