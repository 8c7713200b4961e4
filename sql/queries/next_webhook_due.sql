-- NULL when nothing is waiting for a retry or an expired claim.
SELECT cbs.next_webhook_due()
