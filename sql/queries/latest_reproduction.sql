-- A build's latest reproduction (reads are allowed straight from the table).
SELECT * FROM cbs.reproductions WHERE build_key = $1::text ORDER BY id DESC LIMIT 1
