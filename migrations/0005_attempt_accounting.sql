-- Attempt numbers only grow, so that attempt rows and log lines never repeat one.
-- Attempts that must not use up max_attempts (handed back by a draining or
-- preempted worker, or made before an administrator's requeue) are counted here
-- instead of being taken off `attempt`.
ALTER TABLE cbs.builds
    ADD COLUMN uncounted_attempts integer NOT NULL DEFAULT 0
        CHECK (uncounted_attempts >= 0 AND uncounted_attempts <= attempt);
COMMENT ON COLUMN cbs.builds.uncounted_attempts IS
    'Attempts that do not count against max_attempts (released, or before a requeue): attempt - uncounted_attempts is what counts.';
