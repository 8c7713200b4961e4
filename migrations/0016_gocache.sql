-- The shared Go cache: one row per object workers put in the artifact store
-- under gocache/ (build cache entries, keyed by Go's action IDs) and gomod/
-- (module files). Rows are how the janitor knows sizes and last use without
-- listing the store; it deletes an entry's file first, then its row.
CREATE TABLE cbs.gocache_entries (
    path         text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('build', 'module')),
    size         bigint NOT NULL CHECK (size >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gocache_entries_last_used ON cbs.gocache_entries (last_used_at, path);
COMMENT ON TABLE cbs.gocache_entries IS
    'Objects of the shared Go cache in the artifact store (gocache/: build cache entries, gomod/: module files): size and last use, for the janitor''s trimming.';
