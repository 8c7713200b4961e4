-- Comments on the tables of the first migrations, which never change once
-- applied: every table, view and function in cbs says what it is for, so an
-- admin in psql (\dt+ cbs.*, \df+ cbs.*) reads it where they look.

COMMENT ON TABLE cbs.builds IS
    'One row per build key: the canonical spec, its status, lease and attempt (the fencing token), artifact and provenance. Changed only through the cbs functions.';
COMMENT ON TABLE cbs.build_attempts IS
    'Every claim of a build: worker, start and end, and how it ended (succeeded, failed, retried, released, expired, cancelled).';
COMMENT ON TABLE cbs.build_logs IS
    'Build output lines per attempt and step, appended in batches by the worker (NOTIFY cbs_build_log).';
COMMENT ON TABLE cbs.workers IS
    'Worker processes: host, version, job slots, last heartbeat, and why they stopped.';
COMMENT ON TABLE cbs.schema_state IS
    'Fingerprint of the SQL the last migration run installed; api and worker processes wait until it matches theirs.';
COMMENT ON TABLE cbs.webhook_deliveries IS
    'The outbox of callback_url deliveries: one row per (build, url), claimed with a lease and fenced by its attempt count.';
COMMENT ON TABLE cbs.schema_migrations IS
    'Migrations applied, with the checksum of each file as it was applied (an edited migration is refused).';
