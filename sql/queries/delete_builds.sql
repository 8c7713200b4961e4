-- Rows only: the caller has already deleted the builds' files from storage.
SELECT cbs.delete_builds($1::text[])
