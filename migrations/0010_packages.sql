-- Packages: the plugins this service knows from its own builds, for the official
-- service's package listing (/api/packages). A row per Go module: when it first
-- built here, the latest success and the latest failure that named it first (the
-- worker's errors start with the module to blame), the Caddy modules it adds (as
-- the verify step's list-modules printed them), and how often binaries with it
-- were downloaded. Kept by cbs.note_package_outcome (a trigger on cbs.builds)
-- and cbs.count_downloads.
CREATE TABLE cbs.packages (
    path              text PRIMARY KEY,
    first_built_at    timestamptz,
    last_succeeded_at timestamptz,
    last_failed_at    timestamptz,
    last_error        text,
    -- Caddy module IDs; NULL until a verified build listed them.
    modules           jsonb CHECK (modules IS NULL OR jsonb_typeof(modules) = 'array'),
    -- The plugin version whose build listed the modules.
    modules_version   text,
    downloads         bigint NOT NULL DEFAULT 0 CHECK (downloads >= 0)
);
COMMENT ON TABLE cbs.packages IS
    'Plugins built here: first and latest success, latest failure blamed on them, Caddy modules, downloads.';

-- Builds that succeeded before this table existed.
INSERT INTO cbs.packages (path, first_built_at, last_succeeded_at)
SELECT p->>'module', min(b.finished_at), max(b.finished_at)
  FROM cbs.builds b, jsonb_array_elements(b.spec->'plugins') p
 WHERE b.status = 'succeeded'
 GROUP BY 1;
