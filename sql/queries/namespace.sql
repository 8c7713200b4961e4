-- Identifies this database among all that may share one Docker daemon: the
-- cluster's system identifier plus the database name. Labels on build
-- containers carry it so a worker only ever reaps containers of its own queue.
SELECT (SELECT system_identifier FROM pg_control_system())::text || '/' || current_database()
