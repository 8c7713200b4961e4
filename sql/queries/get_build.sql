-- Reads are allowed straight from the table; writes never are.
SELECT * FROM cbs.builds WHERE build_key = $1::text
