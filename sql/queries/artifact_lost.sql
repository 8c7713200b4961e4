SELECT * FROM cbs.artifact_lost($1::text)
