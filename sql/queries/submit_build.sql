-- Validates, dedups and enqueues (cbs.submit_build does the work).
SELECT * FROM cbs.submit_build($1::jsonb, $2::boolean)
