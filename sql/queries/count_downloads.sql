-- A batch of downloads counted by one api process: {"<build key>": n}.
SELECT cbs.count_downloads($1::jsonb)
