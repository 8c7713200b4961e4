-- Validates, dedups and enqueues (cbs.submit_build does the work, charging the
-- client when it names one); `created` says whether this call created work.
SELECT b.*, current_setting('cbs.submit_created', true) = 'true' AS created
  FROM cbs.submit_build($1::jsonb, $2::boolean, $3::text, $4::jsonb, $5::text) b
