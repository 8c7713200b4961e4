-- Janitor bookkeeping and per-build webhooks. schema_state records which SQL
-- (migrations and procedures) the last migration run installed, so that api and
-- worker processes can wait for a janitor to make the schema current instead of
-- failing against a half-upgraded one. webhook_deliveries is the durable outbox
-- of callback_url notifications: a delivery is a row, claimed with a lease and
-- fenced by its attempt number, so a janitor restart neither loses nor repeats one
-- that was acknowledged.

CREATE TABLE cbs.schema_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fingerprint text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cbs.webhook_deliveries (
    id               bigserial PRIMARY KEY,
    build_key        text NOT NULL REFERENCES cbs.builds (build_key) ON DELETE CASCADE,
    url              text NOT NULL CHECK (url ~ '^https?://'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Attempts started so far; also the fencing token of record_webhook_attempt.
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Set while a janitor is delivering; a crashed janitor's claim expires.
    locked_by        text,
    locked_until     timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    gave_up_at       timestamptz,
    CHECK (delivered_at IS NULL OR gave_up_at IS NULL)
);
-- One open delivery per (build, url): asking twice for the same callback before
-- it was sent does not send it twice.
CREATE UNIQUE INDEX webhook_deliveries_open_uniq ON cbs.webhook_deliveries (build_key, url)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX webhook_deliveries_due_idx ON cbs.webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Retention scans builds by their last use.
CREATE INDEX builds_last_used_idx ON cbs.builds (greatest(last_requested_at, coalesce(finished_at, created_at)))
    WHERE status IN ('succeeded', 'failed', 'cancelled');
