-- When the earliest queued build becomes runnable (retries wait out their backoff),
-- so an idle worker can sleep exactly that long instead of polling.
SELECT min(run_after) FROM cbs.builds WHERE status = 'queued'
