-- The package listing's bookkeeping (cbs.packages). Outcomes are noted by a
-- trigger, so that every way a build ends (complete_build, fail_build,
-- rescue_expired) counts without the lifecycle functions knowing of packages;
-- downloads arrive in batches from the api processes, which count them in memory.

-- A succeeded build: each of its plugins has built here, with the Caddy modules
-- the verify step listed for it (provenance.modules, absent when the binary could
-- not run on the worker: the modules already known stay). A failed build: the
-- plugin its error names first ("module@version: ...") failed.
CREATE OR REPLACE FUNCTION cbs.note_package_outcome()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_modules jsonb := NEW.provenance->'modules';
    p jsonb;
BEGIN
    IF NEW.status = 'succeeded' THEN
        FOR p IN SELECT x FROM jsonb_array_elements(NEW.spec->'plugins') x ORDER BY x->>'module' LOOP
            INSERT INTO cbs.packages AS k (path, first_built_at, last_succeeded_at, modules, modules_version)
            VALUES (p->>'module', now(), now(), v_modules->(p->>'module'),
                    CASE WHEN v_modules ? (p->>'module') THEN p->>'version' END)
            ON CONFLICT (path) DO UPDATE SET
                first_built_at = coalesce(k.first_built_at, now()),
                last_succeeded_at = now(),
                modules = coalesce(EXCLUDED.modules, k.modules),
                modules_version = coalesce(EXCLUDED.modules_version, k.modules_version);
        END LOOP;
    ELSIF NEW.status = 'failed' THEN
        SELECT x INTO p FROM jsonb_array_elements(NEW.spec->'plugins') x
         WHERE starts_with(coalesce(NEW.error, ''), format('%s@%s: ', x->>'module', x->>'version'))
         LIMIT 1;
        IF p IS NOT NULL THEN
            INSERT INTO cbs.packages AS k (path, last_failed_at, last_error)
            VALUES (p->>'module', now(), NEW.error)
            ON CONFLICT (path) DO UPDATE SET last_failed_at = now(), last_error = NEW.error;
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION cbs.note_package_outcome() IS
    'Trigger: a build that ended succeeded or failed updates the packages of its plugins.';

CREATE OR REPLACE TRIGGER builds_note_package_outcome
    AFTER UPDATE OF status ON cbs.builds
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION cbs.note_package_outcome();

-- counts: {"<build key>": downloads, ...}. Adds them to the builds and to each of
-- their plugins' packages; keys of builds that are gone are skipped. Rows are
-- locked in key order, so concurrent batches from several api hosts queue up
-- instead of deadlocking. Returns how many builds were counted.
CREATE OR REPLACE FUNCTION cbs.count_downloads(counts jsonb)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    PERFORM 1 FROM cbs.builds b
     WHERE b.build_key IN (SELECT key FROM jsonb_each_text(counts))
     ORDER BY b.build_key FOR UPDATE;
    WITH c AS (
        SELECT key AS build_key, value::bigint AS n FROM jsonb_each_text(counts) WHERE value::bigint > 0
    ), updated AS (
        UPDATE cbs.builds b SET download_count = b.download_count + c.n
          FROM c WHERE b.build_key = c.build_key
        RETURNING b.spec, c.n
    ), packaged AS (
        INSERT INTO cbs.packages AS k (path, downloads)
        SELECT p->>'module', sum(u.n) FROM updated u, jsonb_array_elements(u.spec->'plugins') p
         GROUP BY 1 ORDER BY 1
        ON CONFLICT (path) DO UPDATE SET downloads = k.downloads + EXCLUDED.downloads
    )
    SELECT count(*) INTO n FROM updated;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION cbs.count_downloads(jsonb) IS
    'Adds a batch of downloads ({"<build key>": n}) to the builds and to their plugins'' packages.';
