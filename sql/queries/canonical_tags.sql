-- Validates a spec's build tags alone (before any version is resolved); returns them canonical.
SELECT cbs.canonical_tags($1::jsonb)
