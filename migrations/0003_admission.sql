-- Admission and fairness: who asks for builds and what they may spend. Build CPU
-- is the scarce resource of a public service, so every request that creates work
-- is charged to a client (an API token, else the requesting address), and the
-- state every api host enforces lives here rather than in one process's memory.

-- API tokens. Only the sha256 of a token is stored: the token itself is shown once,
-- when it is made (cbs.create_token). A NULL limit means the config's default.
CREATE TABLE cbs.api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    token_sha256  text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    burst         integer CHECK (burst >= 0),
    per_hour      double precision CHECK (per_hour >= 0),
    max_queued    integer CHECK (max_queued >= 0),
    max_held      integer CHECK (max_held >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
COMMENT ON TABLE cbs.api_tokens IS
    'API tokens (sha256 only) with their own limits; NULL limits take the config defaults. Revoked rows are kept.';
-- A name is reusable once its token is revoked.
CREATE UNIQUE INDEX api_tokens_active_name_uniq ON cbs.api_tokens (name) WHERE revoked_at IS NULL;

-- One row per client that created work: its token bucket (level `tokens` as of
-- `tokens_at`, refilled continuously; NULL: full, never charged) and when its last
-- build started (fair claiming).
CREATE TABLE cbs.clients (
    client           text PRIMARY KEY,
    tokens           double precision,
    tokens_at        timestamptz NOT NULL DEFAULT now(),
    last_started_at  timestamptz
);
COMMENT ON TABLE cbs.clients IS
    'Clients (token:<name> or addr:<address>): new-build token bucket and the start of their last build.';

-- Admissions and refusals per client and minute, for the heaviest-clients view.
CREATE TABLE cbs.client_usage (
    minute    timestamptz NOT NULL,
    client    text NOT NULL,
    admitted  integer NOT NULL DEFAULT 0,
    refused   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, client)
);
COMMENT ON TABLE cbs.client_usage IS
    'New builds admitted and refused per client and minute; pruned by the janitor''s retention.';

-- client: who was charged for the build's creation (NULL: an administrator or the
-- service itself). priority: request builds always run before background ones.
ALTER TABLE cbs.builds
    ADD COLUMN client text,
    ADD COLUMN priority text NOT NULL DEFAULT 'request' CHECK (priority IN ('request', 'background'));
COMMENT ON COLUMN cbs.builds.client IS 'The client charged for creating the build; NULL: an administrator or the service.';
COMMENT ON COLUMN cbs.builds.priority IS 'request (someone asked) or background (prebuilds, reproductions): never ahead of a request.';

-- Per-client cap on open builds.
CREATE INDEX builds_client_open_idx ON cbs.builds (client) WHERE status IN ('queued', 'building');

-- Queued request builds, for the total cap: a sum over a few rows instead of a
-- count over the queue. Kept by a trigger on cbs.builds (sql/procedures/
-- 018_admission.sql); sharded by backend so that concurrent submits and claims
-- rarely wait on one row.
CREATE TABLE cbs.queued_requests (
    shard   smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 15),
    builds  bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE cbs.queued_requests IS
    'Queued builds of request priority, in 16 shards kept by a trigger on cbs.builds: sum(builds) is the queue''s length.';
INSERT INTO cbs.queued_requests (shard, builds) SELECT s, 0 FROM generate_series(0, 15) s;
UPDATE cbs.queued_requests SET builds = (
    SELECT count(*) FROM cbs.builds WHERE status = 'queued' AND priority = 'request') WHERE shard = 0;
