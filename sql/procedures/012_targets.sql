-- Targets a build may ask for: the GOOS/GOARCH pairs of cbs.targets, the ARM
-- variants (GOARM) of arch=arm and the variant a spec without one gets. The
-- one copy of these rules: cbs.canonical_spec checks specs with them, the api
-- lists them (GET /api/targets) and the download page offers what it lists, and
-- the worker takes GOARM from the canonical spec. None of them keeps a table
-- of its own.

-- The GOARM values a spec may name for arch=arm, oldest first.
CREATE OR REPLACE FUNCTION cbs.arm_versions()
RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['5', '6', '7'] $$;
COMMENT ON FUNCTION cbs.arm_versions() IS
    'The ARM variants (GOARM) a spec with arch=arm may name.';

-- ARMv7 is what Go builds for when cross-compiling and what the official download
-- service builds when asked for arch=arm without arm.
CREATE OR REPLACE FUNCTION cbs.default_arm()
RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '7' $$;
COMMENT ON FUNCTION cbs.default_arm() IS
    'The ARM variant (GOARM) of a spec with arch=arm that names none; part of its canonical form.';

-- Every target with its ARM variants and their default (NULL unless arch=arm),
-- in the order a picker shows them.
CREATE OR REPLACE FUNCTION cbs.target_list()
RETURNS TABLE (os text, arch text, arm_versions text[], default_arm text)
LANGUAGE sql STABLE AS $$
    SELECT t.os, t.arch,
           CASE WHEN t.arch = 'arm' THEN cbs.arm_versions() END,
           CASE WHEN t.arch = 'arm' THEN cbs.default_arm() END
      FROM cbs.targets t
     ORDER BY t.os COLLATE "C", t.arch COLLATE "C"
$$;
COMMENT ON FUNCTION cbs.target_list() IS
    'The targets a build may ask for, each with its ARM variants and their default (arch=arm only).';

-- Checks a spec's os, arch and arm; returns the canonical arm (the default filled
-- in for arch=arm, NULL otherwise) or raises CB400 naming the field. Empty is
-- taken as absent, as query strings (os=&arch=) send it.
CREATE OR REPLACE FUNCTION cbs.canonical_arm(v_os text, v_arch text, v_arm text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF coalesce(v_os, '') = '' THEN
        PERFORM cbs.raise_bad_spec('os', 'is required (like linux)');
    END IF;
    IF coalesce(v_arch, '') = '' THEN
        PERFORM cbs.raise_bad_spec('arch', 'is required (like amd64)');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM cbs.targets t WHERE t.os = v_os AND t.arch = v_arch) THEN
        IF NOT EXISTS (SELECT 1 FROM cbs.targets t WHERE t.os = v_os) THEN
            PERFORM cbs.raise_bad_spec('os', format('%L is not a supported operating system', v_os));
        END IF;
        PERFORM cbs.raise_bad_spec('arch', format('%L is not a supported architecture for os %L', v_arch, v_os));
    END IF;
    IF v_arch = 'arm' THEN
        v_arm := coalesce(nullif(v_arm, ''), cbs.default_arm());
        IF NOT v_arm = ANY (cbs.arm_versions()) THEN
            PERFORM cbs.raise_bad_spec('arm', format('%L is not a supported ARM version (%s)',
                v_arm, array_to_string(cbs.arm_versions(), ', ')));
        END IF;
        RETURN v_arm;
    END IF;
    IF coalesce(v_arm, '') <> '' THEN
        PERFORM cbs.raise_bad_spec('arm', format('%L is only allowed with arch=arm, not arch=%L', v_arm, v_arch));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION cbs.canonical_arm(text, text, text) IS
    'Checks a target (os, arch, arm) and returns its canonical arm (default filled in for arch=arm); raises CB400.';
