-- Queued builds per priority class, for the metrics.
SELECT p.priority, count(b.build_key)
  FROM unnest(ARRAY['request', 'background']) AS p(priority)
  LEFT JOIN cbs.builds b ON b.status = 'queued' AND b.priority = p.priority
 GROUP BY p.priority
