-- Reproductions: a second worker rebuilds a succeeded build from its recorded
-- go.mod/go.sum, toolchain and recipe, and the two sha256 are compared. Go
-- builds are reproducible, so a different hash means the recorded inputs, the
-- toolchain or a worker is not what it claims. A reproduction is a job of its
-- own (queued, claimed under a lease by a worker other than the one that built
-- it, fenced by attempt like builds), never a change to the build or its
-- published artifact.
CREATE TABLE cbs.reproductions (
    id                  bigserial PRIMARY KEY,
    build_key           text NOT NULL REFERENCES cbs.builds (build_key) ON DELETE CASCADE,
    -- Who asked: an administrator ('admin') or the janitor's sampling policy ('janitor').
    requested_by        text NOT NULL CHECK (requested_by IN ('admin', 'janitor')),
    -- The artifact and worker being checked, copied when the reproduction is queued:
    -- a later rebuild of the same key does not change what this one compares with.
    original_sha256     text NOT NULL CHECK (original_sha256 ~ '^[0-9a-f]{64}$'),
    original_worker_id  text NOT NULL,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'reproduced', 'mismatch', 'failed')),
    attempt             integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    run_after           timestamptz NOT NULL DEFAULT now(),
    worker_id           text,
    worker_incarnation  text,
    lease_expires_at    timestamptz,
    -- The reproducing worker's hash, and what it found (Go version, image, whether
    -- the recorded inputs had to change to build, step timings).
    reproduced_sha256   text CHECK (reproduced_sha256 ~ '^[0-9a-f]{64}$'),
    detail              jsonb NOT NULL DEFAULT '{}'::jsonb,
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    CHECK ((status = 'running') = (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status IN ('reproduced', 'mismatch')) = (reproduced_sha256 IS NOT NULL)),
    CHECK (status <> 'mismatch' OR reproduced_sha256 <> original_sha256)
);
COMMENT ON TABLE cbs.reproductions IS
    'Rebuilds of succeeded builds by another worker from the recorded inputs, and their outcome: reproduced, mismatch (both hashes and workers) or failed. Changed only through the cbs functions.';

-- At most one open reproduction per build: asking again joins it.
CREATE UNIQUE INDEX reproductions_open_idx ON cbs.reproductions (build_key) WHERE status IN ('queued', 'running');
-- cbs.claim_reproductions: oldest runnable first.
CREATE INDEX reproductions_queued_idx ON cbs.reproductions (created_at, id) WHERE status = 'queued';
-- heartbeats, releases, rescue.
CREATE INDEX reproductions_running_idx ON cbs.reproductions (worker_id) WHERE status = 'running';
-- A build's latest reproduction (status JSON, build page).
CREATE INDEX reproductions_build_idx ON cbs.reproductions (build_key, id);
