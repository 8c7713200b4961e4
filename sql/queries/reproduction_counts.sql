-- Reproductions per outcome, for the metrics (every outcome, zero included).
SELECT s.status, count(r.id)
  FROM unnest(ARRAY['queued', 'running', 'reproduced', 'mismatch', 'failed']) AS s(status)
  LEFT JOIN cbs.reproductions r ON r.status = s.status
 GROUP BY s.status
