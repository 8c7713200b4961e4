-- The GOOS/GOARCH pairs a build may ask for, for the download form.
SELECT os, arch FROM cbs.targets ORDER BY os, arch
