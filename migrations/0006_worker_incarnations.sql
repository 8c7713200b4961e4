-- Each worker process has an incarnation of its own, so that a worker restarted
-- under the same id (a container restart keeps hostname and PID 1) neither renews
-- the leases of builds its previous process was running nor leaves them stranded:
-- heartbeats renew only the builds of their incarnation, and a starting worker
-- hands back what earlier incarnations of its id held.
ALTER TABLE cbs.workers ADD COLUMN incarnation text;
COMMENT ON COLUMN cbs.workers.incarnation IS 'The running process''s incarnation (random, new at every start).';
ALTER TABLE cbs.builds ADD COLUMN worker_incarnation text;
COMMENT ON COLUMN cbs.builds.worker_incarnation IS
    'While building: the incarnation of the worker process that claimed it (NULL when claimed without one, e.g. from psql).';
