-- Open webhook deliveries, for the queue statistics.
SELECT count(*) FROM cbs.webhook_deliveries WHERE delivered_at IS NULL AND gave_up_at IS NULL
