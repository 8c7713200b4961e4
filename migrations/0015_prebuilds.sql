-- Prebuilds: builds the leader janitor queues before anyone asks, so that the
-- first request for them (or for a variant of them) finds them, or the caches,
-- warm. Two tables: how often each spec was requested per day (what "popular"
-- means: cbs.popular_specs ranks by it), and what was prebuilt and why.

-- One row per build key and day: calls of cbs.submit_build at request priority
-- (a compat download, a REST or official submit, a psql admin), whether they
-- created the build, joined it or found it built. Background submits (prebuilds,
-- reproductions) are not demand and are not counted. No foreign key: retention
-- may delete a build whose count is still inside the window.
CREATE TABLE cbs.spec_requests (
    build_key text NOT NULL,
    day       date NOT NULL,
    requests  bigint NOT NULL CHECK (requests > 0),
    PRIMARY KEY (build_key, day)
);
COMMENT ON TABLE cbs.spec_requests IS
    'Requests per build key and day (cbs.submit_build calls at request priority); ranks the popular specs that release watching rebuilds.';
-- cbs.popular_specs sums the window's days; pruning drops old ones.
CREATE INDEX spec_requests_day_idx ON cbs.spec_requests (day);

-- One row per prebuilt build key: a key is prebuilt at most once, so a restart,
-- a second leader or the next poll never queues it again.
CREATE TABLE cbs.prebuilds (
    id              bigserial PRIMARY KEY,
    build_key       text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    -- configured: an entry of prebuild.specs; caddy_release / plugin_release: a
    -- popular spec rebuilt with a Caddy release (and maybe plugin releases) or
    -- with plugin releases only.
    reason          text NOT NULL CHECK (reason IN ('configured', 'caddy_release', 'plugin_release')),
    -- What changed from the source spec ({"caddy": {"from", "to"}, "plugins":
    -- [{"module", "from", "to"}]}) or which config entry asked for it.
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The popular build it was derived from, and its requests in the window then.
    source_key      text,
    source_requests bigint,
    janitor_id      text,
    queued_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cbs.prebuilds IS
    'What the janitor prebuilt and why: configured specs on a fresh start, popular specs rebuilt with new Caddy or plugin releases.';
CREATE INDEX prebuilds_queued_at_idx ON cbs.prebuilds (queued_at DESC);
