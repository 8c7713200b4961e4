-- The admin view, with the age in seconds for logging.
SELECT status, builds, runnable, extract(epoch FROM oldest_age)::float8 AS oldest_age_secs
  FROM cbs.queue_overview
