-- Every package row, for the package listing (reads are allowed straight from the table).
SELECT path, first_built_at, last_succeeded_at, last_failed_at, modules, downloads
  FROM cbs.packages
 ORDER BY path
