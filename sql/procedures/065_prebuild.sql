-- Prebuilding: the leader janitor queues builds before anyone asks for them (the
-- configured prebuild.specs on a fresh start, popular specs with new releases).
-- Demand is counted here too: cbs.submit_build notes each request per spec and
-- day, and cbs.popular_specs ranks by it. Prebuilds go in at background
-- priority, charged to no client: cbs.claim_builds never starts one while a
-- request is runnable, and a request that joins one lifts it to request priority.

-- Counts one request for build_key today (called by cbs.submit_build at request
-- priority, in its transaction: a refused request rolls its count back with it).
CREATE OR REPLACE FUNCTION cbs.note_request(build_key text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO cbs.spec_requests AS r (build_key, day, requests)
    VALUES (note_request.build_key, current_date, 1)
    ON CONFLICT (build_key, day) DO UPDATE SET requests = r.requests + 1
$$;
COMMENT ON FUNCTION cbs.note_request(text) IS
    'Counts one request for a build key in today''s row of cbs.spec_requests (cbs.submit_build calls it at request priority).';

-- The top_n most requested specs of the last window (today included), most
-- requests first, then the most recently requested, then by key (a stable
-- order). Only specs whose build row still exists: it holds the spec.
CREATE OR REPLACE FUNCTION cbs.popular_specs(top_n int, window_length interval DEFAULT '30 days')
RETURNS TABLE (build_key text, spec jsonb, requests bigint, last_requested_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT b.build_key, b.spec, r.requests, b.last_requested_at
      FROM (SELECT s.build_key, sum(s.requests)::bigint AS requests
              FROM cbs.spec_requests s
             WHERE s.day > (now() - window_length)::date
             GROUP BY s.build_key) r
      JOIN cbs.builds b ON b.build_key = r.build_key
     ORDER BY r.requests DESC, b.last_requested_at DESC, b.build_key
     LIMIT greatest(top_n, 0)
$$;
COMMENT ON FUNCTION cbs.popular_specs(int, interval) IS
    'The top_n most requested specs of the last window (requests counted per day in cbs.spec_requests), most requested first.';

-- Queues spec as a prebuild unless its key was built, requested or prebuilt
-- before: at background priority, charged to no client, recorded in
-- cbs.prebuilds with its reason. Returns the record, or NULL when nothing was
-- queued. A key is prebuilt at most once, so restarts and overlapping leaders
-- never queue it twice.
CREATE OR REPLACE FUNCTION cbs.prebuild(
    spec jsonb, reason text, detail jsonb DEFAULT '{}', source_key text DEFAULT NULL,
    source_requests bigint DEFAULT NULL, janitor_id text DEFAULT NULL)
RETURNS cbs.prebuilds LANGUAGE plpgsql AS $$
DECLARE
    v_spec jsonb := cbs.canonical_spec(spec);
    v_key  text := cbs.canonical_key(v_spec);
    p      cbs.prebuilds;
BEGIN
    IF EXISTS (SELECT 1 FROM cbs.builds b WHERE b.build_key = v_key) THEN
        RETURN NULL;
    END IF;
    INSERT INTO cbs.prebuilds (build_key, spec, reason, detail, source_key, source_requests, janitor_id)
    VALUES (v_key, v_spec, prebuild.reason, coalesce(prebuild.detail, '{}'), prebuild.source_key,
            prebuild.source_requests, prebuild.janitor_id)
    ON CONFLICT (build_key) DO NOTHING
    RETURNING * INTO p;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM cbs.submit_build(v_spec, false, NULL, NULL, 'background');
    RETURN p;
END;
$$;
COMMENT ON FUNCTION cbs.prebuild(jsonb, text, jsonb, text, bigint, text) IS
    'Janitor: queues a spec at background priority for no client, once per build key, unless it exists already; records why in cbs.prebuilds.';

-- Forgets request counts older than keep; returns how many day rows went.
CREATE OR REPLACE FUNCTION cbs.prune_spec_requests(keep interval)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM cbs.spec_requests s WHERE s.day <= (now() - keep)::date;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.prune_spec_requests(interval) IS
    'Janitor: deletes per-day request counts older than keep (the popularity window).';

-- For psql admins and the admin page: each prebuild, newest first, with its
-- build's state and how long after queueing it was ready.
CREATE OR REPLACE VIEW cbs.prebuild_overview AS
SELECT p.queued_at, p.reason,
       concat_ws('/', p.spec->>'os', p.spec->>'arch', p.spec->>'arm') AS target,
       p.spec->>'caddy_version' AS caddy_version,
       (SELECT string_agg(x->>'module' || '@' || (x->>'version'), ' ' ORDER BY x->>'module')
          FROM jsonb_array_elements(p.spec->'plugins') x) AS plugins,
       p.detail, p.source_key, p.source_requests,
       coalesce(b.status, 'deleted') AS status,
       CASE WHEN b.status = 'succeeded' THEN b.finished_at - p.queued_at END AS ready_after,
       b.error, p.build_key, p.janitor_id
  FROM cbs.prebuilds p
  LEFT JOIN cbs.builds b ON b.build_key = p.build_key
 ORDER BY p.queued_at DESC, p.id DESC;
COMMENT ON VIEW cbs.prebuild_overview IS
    'Prebuilds, newest first: why (configured spec or a Caddy/plugin release for a popular spec), the build''s state and time to ready.';

-- Forgets prebuild records older than keep whose build retention has deleted
-- (nobody requested it for its max_age); returns how many. Until then a record
-- keeps its key from being prebuilt again; after it, a configured spec or a
-- popular spec's upgrade that is still wanted is prebuilt once more.
CREATE OR REPLACE FUNCTION cbs.prune_prebuilds(keep interval)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM cbs.prebuilds p
     WHERE p.queued_at < now() - keep
       AND NOT EXISTS (SELECT 1 FROM cbs.builds b WHERE b.build_key = p.build_key);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.prune_prebuilds(interval) IS
    'Janitor: deletes prebuild records older than keep whose build no longer exists (retention deleted it).';
