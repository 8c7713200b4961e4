-- Build spec validation and the build key. They live in SQL so that psql, the
-- api and the worker can never disagree about what a spec means or which key
-- it has: every caller goes through cbs.canonical_spec() and cbs.build_key().
-- Bad specs raise SQLSTATE CB400, with a message that starts with the offending field.

-- Why a module path is unacceptable by Go's module path rules
-- (golang.org/x/mod/module.CheckPath), or NULL when it is fine. The one copy of
-- the rule: the api, the download page and the janitor's configured prebuilds
-- all ask this function rather than keep their own checker.
CREATE OR REPLACE FUNCTION cbs.module_path_problem(path text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    max_len constant int := 300;
    -- File names Windows reserves (with or without an extension); Go refuses
    -- them as path elements, so that a module can be unpacked everywhere.
    reserved constant text[] := ARRAY['CON', 'PRN', 'AUX', 'NUL',
        'COM1', 'COM2', 'COM3', 'COM4', 'COM5', 'COM6', 'COM7', 'COM8', 'COM9',
        'LPT1', 'LPT2', 'LPT3', 'LPT4', 'LPT5', 'LPT6', 'LPT7', 'LPT8', 'LPT9'];
    elems text[];
    elem  text;
    major text;
    bad   text;
BEGIN
    IF path IS NULL OR path = '' THEN
        RETURN 'is empty';
    END IF;
    IF length(path) > max_len THEN
        RETURN format('is longer than %s characters', max_len);
    END IF;
    bad := substring(path FROM '[^A-Za-z0-9._~/-]');
    IF bad IS NOT NULL THEN
        RETURN format('contains the character %L (allowed: letters, digits, ''-'', ''.'', ''_'', ''~'', ''/'')', bad);
    END IF;
    elems := string_to_array(path, '/');
    FOREACH elem IN ARRAY elems LOOP
        IF elem = '' THEN
            RETURN 'has an empty path element (leading, trailing or double slash)';
        END IF;
        IF left(elem, 1) = '.' OR right(elem, 1) = '.' THEN
            RETURN format('has a path element %L that begins or ends with a dot', elem);
        END IF;
        IF upper(split_part(elem, '.', 1)) = ANY (reserved) THEN
            RETURN format('has a path element %L that is a reserved file name on Windows', elem);
        END IF;
    END LOOP;
    IF elems[1] !~ '^[a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)+$' THEN
        RETURN format('must begin with a lowercase domain name (like github.com), not %L', elems[1]);
    END IF;
    -- gopkg.in names the major version in the last element: yaml.v3 (v0 allowed, -unstable too).
    IF path LIKE 'gopkg.in/%' THEN
        IF elems[array_length(elems, 1)] !~ '^.+\.v(0|[1-9][0-9]*)(-unstable)?$' THEN
            RETURN 'must end in a .vN major version suffix (gopkg.in paths)';
        END IF;
        RETURN NULL;
    END IF;
    -- A trailing /vN is a major version suffix: N >= 2, no leading zero, no dots.
    major := substring(path FROM '/v[0-9.]+$');
    IF major IS NOT NULL AND (major !~ '^/v[1-9][0-9]*$' OR major = '/v1') THEN
        RETURN format('has an invalid major version suffix %L (must be /v2 or higher)', major);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION cbs.module_path_problem(text) IS
    'Why a module path breaks Go''s module path rules, or NULL when it is valid.';

-- Semantic version or Go pseudo-version, with the optional +incompatible.
CREATE OR REPLACE FUNCTION cbs.is_absolute_version(version text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT version IS NOT NULL AND length(version) <= 128 AND version ~
        '^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+incompatible)?$'
$$;
COMMENT ON FUNCTION cbs.is_absolute_version(text) IS
    'Whether a version is absolute: a semver tag or Go pseudo-version, optionally +incompatible.';

-- Why a version cannot be used for a module, or NULL when it can: it must be absolute and
-- match the module path's major version suffix (Go's import compatibility rule).
CREATE OR REPLACE FUNCTION cbs.module_version_problem(path text, version text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    suffix_major text := substring(path FROM '/v([0-9]+)$');
    version_major text := substring(version FROM '^v([0-9]+)\.');
BEGIN
    IF version IS NULL OR version = '' THEN
        RETURN 'is missing (it must be resolved to an absolute version first)';
    END IF;
    IF NOT cbs.is_absolute_version(version) THEN
        RETURN format('%L is not an absolute version (a semver tag like v1.2.3 or a pseudo-version)', version);
    END IF;
    IF path LIKE 'gopkg.in/%' THEN
        RETURN NULL;
    END IF;
    IF suffix_major IS NOT NULL THEN
        IF version_major <> suffix_major OR version LIKE '%+incompatible' THEN
            RETURN format('%L does not match the module''s major version suffix /v%s', version, suffix_major);
        END IF;
    ELSIF version_major::int > 1 AND version NOT LIKE '%+incompatible' THEN
        RETURN format('%L has major version %s but the module path has no /v%s suffix', version, version_major, version_major);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION cbs.module_version_problem(text, text) IS
    'Why a version cannot be used for a module (not absolute, or against the major version suffix), or NULL.';

-- The Go a spec without go_version is built with: the newest Go this release of
-- the project is known to build Caddy with (the api fills in worker.go_version
-- before SQL; this covers specs submitted from psql). Filled into the canonical
-- spec, so that a key always names the Go its binary was built with.
CREATE OR REPLACE FUNCTION cbs.default_go_version()
RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '1.26.8' $$;
COMMENT ON FUNCTION cbs.default_go_version() IS
    'Go version of specs that name none (1.N.P); part of their canonical form and key.';

-- SQLSTATE CB400 is this project's "the spec is wrong": the api answers it with a
-- 400 naming the field, while Postgres's own data errors stay internal errors.
CREATE OR REPLACE FUNCTION cbs.raise_bad_spec(field text, problem text, code text DEFAULT 'CB400')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = field || ' ' || problem;
END;
$$;
COMMENT ON FUNCTION cbs.raise_bad_spec(text, text, text) IS
    'Raises a bad-spec error (SQLSTATE CB400 unless told) whose message starts with the field.';

-- The build tags of a spec that names none: xcaddy's defaults, which leave out the
-- database drivers Caddy's own releases leave out. Spelled in xcaddy v0.4.5's
-- builder.go; the worker passes the spec's tags to `go build -tags` as they are.
CREATE OR REPLACE FUNCTION cbs.default_build_tags()
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '["nobadger", "nomysql", "nopgx"]'::jsonb
$$;
COMMENT ON FUNCTION cbs.default_build_tags() IS
    'The build tags of a spec without tags: xcaddy''s defaults (nobadger, nomysql, nopgx).';

-- A spec's build tags, validated, without duplicates and sorted (Go records
-- `-tags` in the binary in the order given, so one order keeps one key per
-- binary). Absent or null means xcaddy's defaults; [] means no tags at all.
-- A tag is what Go's build constraints accept (letters, digits, '_', '.'), so
-- none can carry a comma, a space or anything a shell would read.
CREATE OR REPLACE FUNCTION cbs.canonical_tags(tags jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    max_tags constant int := 32;
    max_len  constant int := 64;
    item     jsonb;
    idx      int := 0;
    tag      text;
BEGIN
    IF tags IS NULL OR tags = 'null'::jsonb THEN
        RETURN cbs.default_build_tags();
    END IF;
    IF jsonb_typeof(tags) <> 'array' THEN
        PERFORM cbs.raise_bad_spec('tags', 'must be an array of build tags');
    END IF;
    IF jsonb_array_length(tags) > max_tags THEN
        PERFORM cbs.raise_bad_spec('tags', format('has %s entries (at most %s)', jsonb_array_length(tags), max_tags));
    END IF;
    FOR item IN SELECT value FROM jsonb_array_elements(tags) LOOP
        IF jsonb_typeof(item) <> 'string' THEN
            PERFORM cbs.raise_bad_spec(format('tags[%s]', idx), 'must be a string');
        END IF;
        tag := item #>> '{}';
        IF tag = '' OR length(tag) > max_len THEN
            PERFORM cbs.raise_bad_spec(format('tags[%s]', idx), format('must be 1 to %s characters long', max_len));
        END IF;
        IF tag !~ '^[A-Za-z0-9_.]+$' THEN
            PERFORM cbs.raise_bad_spec(format('tags[%s] %L', idx, tag),
                'may contain only letters, digits, ''_'' and ''.'' (a Go build tag)');
        END IF;
        idx := idx + 1;
    END LOOP;
    RETURN (SELECT coalesce(jsonb_agg(t ORDER BY t), '[]')
              FROM (SELECT DISTINCT e.t COLLATE "C" AS t FROM jsonb_array_elements_text(tags) AS e(t)) d);
END;
$$;
COMMENT ON FUNCTION cbs.canonical_tags(jsonb) IS
    'A spec''s build tags validated, deduplicated and sorted; xcaddy''s defaults when absent or null.';

-- Validates a spec and returns its canonical form: known keys only, plugins sorted by
-- module, replacements sorted by old path, arm only (and always) for arch=arm, tags
-- always (cbs.canonical_tags), go_version always (cbs.default_go_version() when the
-- spec names none). Unless `resolved`, versions are left as written and not
-- checked: that is the api's check of a request before it asks the module proxy,
-- so that a request is refused with the message its spec would get, before any
-- version is resolved.
CREATE OR REPLACE FUNCTION cbs.checked_spec(spec jsonb, resolved boolean)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    unknown   text;
    caddy     text;
    v_os      text;
    v_arch    text;
    v_arm     text;
    v_go      text;
    item      jsonb;
    idx       int := 0;
    problem   text;
    plugins   jsonb := '[]'::jsonb;
    repls     jsonb := '[]'::jsonb;
    canonical jsonb;
BEGIN
    IF spec IS NULL OR jsonb_typeof(spec) <> 'object' THEN
        PERFORM cbs.raise_bad_spec('spec', 'must be a JSON object');
    END IF;
    SELECT k INTO unknown FROM jsonb_object_keys(spec) AS k
     WHERE k NOT IN ('caddy_version', 'plugins', 'replacements', 'os', 'arch', 'arm', 'tags', 'go_version')
     ORDER BY k LIMIT 1;
    IF unknown IS NOT NULL THEN
        PERFORM cbs.raise_bad_spec(unknown, 'is not a known spec field');
    END IF;

    caddy := spec->>'caddy_version';
    problem := CASE WHEN resolved THEN cbs.module_version_problem('github.com/caddyserver/caddy/v2', caddy) END;
    IF problem IS NOT NULL THEN
        PERFORM cbs.raise_bad_spec('caddy_version', problem);
    END IF;

    v_os := spec->>'os';
    v_arch := spec->>'arch';
    v_arm := cbs.canonical_arm(v_os, v_arch, spec->>'arm');

    -- A Go release from 1.21.0 on (toolchains are modules from then); `go1.26.8` is taken as 1.26.8.
    v_go := regexp_replace(coalesce(nullif(spec->>'go_version', ''), cbs.default_go_version()), '^go', '');
    IF v_go !~ '^1\.(2[1-9]|[3-9][0-9]|[1-9][0-9]{2})\.(0|[1-9][0-9]{0,2})$' THEN
        PERFORM cbs.raise_bad_spec('go_version', format('%L is not a Go release like 1.26.8 (1.21.0 or newer)', spec->>'go_version'));
    END IF;

    IF spec ? 'plugins' AND jsonb_typeof(spec->'plugins') NOT IN ('array', 'null') THEN
        PERFORM cbs.raise_bad_spec('plugins', 'must be an array');
    END IF;
    FOR item IN SELECT value FROM jsonb_array_elements(coalesce(nullif(spec->'plugins', 'null'), '[]')) LOOP
        IF jsonb_typeof(item) <> 'object' OR EXISTS (
            SELECT 1 FROM jsonb_object_keys(item) k WHERE k NOT IN ('module', 'version')) THEN
            PERFORM cbs.raise_bad_spec(format('plugins[%s]', idx), 'must be an object with module and version');
        END IF;
        problem := cbs.module_path_problem(item->>'module');
        IF problem IS NOT NULL THEN
            PERFORM cbs.raise_bad_spec(format('plugins[%s].module %L', idx, item->>'module'), problem);
        END IF;
        IF (item->>'module') = 'github.com/caddyserver/caddy/v2' THEN
            PERFORM cbs.raise_bad_spec(format('plugins[%s].module', idx), 'is Caddy itself; use caddy_version');
        END IF;
        IF plugins @> jsonb_build_array(jsonb_build_object('module', item->>'module')) THEN
            PERFORM cbs.raise_bad_spec(format('plugins[%s].module %L', idx, item->>'module'), 'is listed more than once');
        END IF;
        problem := CASE WHEN resolved THEN cbs.module_version_problem(item->>'module', item->>'version') END;
        IF problem IS NOT NULL THEN
            PERFORM cbs.raise_bad_spec(format('plugins[%s].version of %s', idx, item->>'module'), problem);
        END IF;
        plugins := plugins || jsonb_build_array(jsonb_build_object('module', item->>'module', 'version', item->>'version'));
        idx := idx + 1;
    END LOOP;

    IF spec ? 'replacements' AND jsonb_typeof(spec->'replacements') NOT IN ('array', 'null') THEN
        PERFORM cbs.raise_bad_spec('replacements', 'must be an array');
    END IF;
    idx := 0;
    FOR item IN SELECT value FROM jsonb_array_elements(coalesce(nullif(spec->'replacements', 'null'), '[]')) LOOP
        IF jsonb_typeof(item) <> 'object' OR EXISTS (
            SELECT 1 FROM jsonb_object_keys(item) k WHERE k NOT IN ('old', 'new', 'version')) THEN
            PERFORM cbs.raise_bad_spec(format('replacements[%s]', idx), 'must be an object with old, new and version');
        END IF;
        problem := cbs.module_path_problem(item->>'old');
        IF problem IS NOT NULL THEN
            PERFORM cbs.raise_bad_spec(format('replacements[%s].old %L', idx, item->>'old'), problem);
        END IF;
        problem := cbs.module_path_problem(item->>'new');
        IF problem IS NOT NULL THEN
            PERFORM cbs.raise_bad_spec(format('replacements[%s].new %L', idx, item->>'new'), problem);
        END IF;
        IF repls @> jsonb_build_array(jsonb_build_object('old', item->>'old')) THEN
            PERFORM cbs.raise_bad_spec(format('replacements[%s].old %L', idx, item->>'old'), 'is replaced more than once');
        END IF;
        problem := CASE WHEN resolved THEN cbs.module_version_problem(item->>'new', item->>'version') END;
        IF problem IS NOT NULL THEN
            PERFORM cbs.raise_bad_spec(format('replacements[%s].version of %s', idx, item->>'new'), problem);
        END IF;
        repls := repls || jsonb_build_array(jsonb_build_object(
            'old', item->>'old', 'new', item->>'new', 'version', item->>'version'));
        idx := idx + 1;
    END LOOP;

    SELECT coalesce(jsonb_agg(p ORDER BY p->>'module' COLLATE "C"), '[]') INTO plugins
      FROM jsonb_array_elements(plugins) p;
    SELECT coalesce(jsonb_agg(r ORDER BY r->>'old' COLLATE "C"), '[]') INTO repls
      FROM jsonb_array_elements(repls) r;

    canonical := jsonb_build_object(
        'caddy_version', caddy, 'plugins', plugins, 'replacements', repls,
        'os', v_os, 'arch', v_arch, 'go_version', v_go);
    IF v_arch = 'arm' THEN
        canonical := canonical || jsonb_build_object('arm', v_arm);
    END IF;
    -- Always present, defaults included: every key made before tags existed
    -- (built without them, from another main.go) stays apart from every new one.
    canonical := canonical || jsonb_build_object('tags', cbs.canonical_tags(spec->'tags'));
    RETURN canonical;
END;
$$;
COMMENT ON FUNCTION cbs.checked_spec(jsonb, boolean) IS
    'cbs.canonical_spec, with versions checked only when resolved (the api checks requests with resolved = false).';

CREATE OR REPLACE FUNCTION cbs.canonical_spec(spec jsonb)
RETURNS jsonb LANGUAGE sql STABLE AS $$ SELECT cbs.checked_spec(spec, true) $$;
COMMENT ON FUNCTION cbs.canonical_spec(jsonb) IS
    'Validates a build spec and returns its canonical form; raises SQLSTATE CB400 on a bad spec.';

-- jsonb's text form is deterministic (keys ordered, fixed spacing), so hashing the
-- canonical spec's text gives one key per build, whatever the input's order or layout.
CREATE OR REPLACE FUNCTION cbs.canonical_key(canonical jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(canonical::text, 'UTF8')), 'hex')
$$;
COMMENT ON FUNCTION cbs.canonical_key(jsonb) IS
    'The key of a spec already in canonical form (cbs.build_key without validating again).';

CREATE OR REPLACE FUNCTION cbs.build_key(spec jsonb)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT cbs.canonical_key(cbs.canonical_spec(spec))
$$;
COMMENT ON FUNCTION cbs.build_key(jsonb) IS
    'Lowercase hex sha256 of the canonical spec: the build''s identity and dedup key.';
