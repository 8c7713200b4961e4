-- The queue's tables. They are private: every state change goes through the
-- functions in sql/procedures/, which keep the invariants (fencing, NOTIFY in
-- the same transaction, attempt accounting). Admins read them through the views.

CREATE TABLE cbs.targets (
    os   text NOT NULL,
    arch text NOT NULL,
    PRIMARY KEY (os, arch)
);
COMMENT ON TABLE cbs.targets IS
    'GOOS/GOARCH pairs a build may ask for: Go''s own targets that build without cgo.';

INSERT INTO cbs.targets (os, arch) VALUES
    ('aix', 'ppc64'),
    ('darwin', 'amd64'), ('darwin', 'arm64'),
    ('dragonfly', 'amd64'),
    ('freebsd', '386'), ('freebsd', 'amd64'), ('freebsd', 'arm'), ('freebsd', 'arm64'), ('freebsd', 'riscv64'),
    ('illumos', 'amd64'),
    ('linux', '386'), ('linux', 'amd64'), ('linux', 'arm'), ('linux', 'arm64'), ('linux', 'loong64'),
    ('linux', 'mips'), ('linux', 'mips64'), ('linux', 'mips64le'), ('linux', 'mipsle'),
    ('linux', 'ppc64'), ('linux', 'ppc64le'), ('linux', 'riscv64'), ('linux', 's390x'),
    ('netbsd', '386'), ('netbsd', 'amd64'), ('netbsd', 'arm'), ('netbsd', 'arm64'),
    ('openbsd', '386'), ('openbsd', 'amd64'), ('openbsd', 'arm'), ('openbsd', 'arm64'),
    ('openbsd', 'ppc64'), ('openbsd', 'riscv64'),
    ('solaris', 'amd64'),
    ('windows', '386'), ('windows', 'amd64'), ('windows', 'arm64');

CREATE TABLE cbs.builds (
    build_key          text PRIMARY KEY CHECK (build_key ~ '^[0-9a-f]{64}$'),
    spec               jsonb NOT NULL,
    status             text NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'building', 'succeeded', 'failed', 'cancelled')),
    -- Counted attempts so far; also the fencing token together with worker_id.
    attempt            integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts       integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    run_after          timestamptz NOT NULL DEFAULT now(),
    worker_id          text,
    lease_expires_at   timestamptz,
    error              text,
    artifact           jsonb,
    provenance         jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    last_requested_at  timestamptz NOT NULL DEFAULT now(),
    download_count     bigint NOT NULL DEFAULT 0,
    CHECK ((status = 'building') = (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status = 'succeeded') = (artifact IS NOT NULL))
);

-- claim_builds: oldest runnable queued build first.
CREATE INDEX builds_queued_idx ON cbs.builds (created_at, build_key) WHERE status = 'queued';
-- heartbeat / release_worker / rescue_expired.
CREATE INDEX builds_building_worker_idx ON cbs.builds (worker_id) WHERE status = 'building';
CREATE INDEX builds_building_lease_idx ON cbs.builds (lease_expires_at) WHERE status = 'building';
-- recent_failures and retention.
CREATE INDEX builds_finished_idx ON cbs.builds (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE cbs.build_attempts (
    id          bigserial PRIMARY KEY,
    build_key   text NOT NULL REFERENCES cbs.builds (build_key) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    worker_id   text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- NULL while running; then succeeded, failed, retried, released, expired or cancelled.
    outcome     text CHECK (outcome IN ('succeeded', 'failed', 'retried', 'released', 'expired', 'cancelled')),
    error       text
);
CREATE INDEX build_attempts_key_idx ON cbs.build_attempts (build_key, id);
CREATE INDEX build_attempts_open_idx ON cbs.build_attempts (build_key) WHERE finished_at IS NULL;

CREATE TABLE cbs.build_logs (
    id         bigserial PRIMARY KEY,
    build_key  text NOT NULL REFERENCES cbs.builds (build_key) ON DELETE CASCADE,
    attempt    integer NOT NULL,
    step       text NOT NULL,
    stream     text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    line       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX build_logs_key_idx ON cbs.build_logs (build_key, id);

CREATE TABLE cbs.workers (
    worker_id    text PRIMARY KEY,
    host         text NOT NULL,
    version      text NOT NULL,
    max_jobs     integer NOT NULL CHECK (max_jobs > 0),
    info         jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    -- NULL while running; set when the worker released its builds and left.
    stopped_at   timestamptz,
    stop_reason  text
);
