-- Log lines of a build after a given id, for replay and for following live.
SELECT id, attempt, step, stream, line, created_at
  FROM cbs.build_logs
 WHERE build_key = $1::text AND id > $2::bigint
 ORDER BY id
 LIMIT $3::bigint
