-- The GOOS/GOARCH pairs a build may ask for, so the api rejects a bad target before resolving versions.
SELECT os, arch FROM cbs.targets ORDER BY os, arch
