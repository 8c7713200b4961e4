-- Returns the new status, or NULL when the caller was fenced out.
SELECT cbs.fail_build($1::text, $2::int, $3::text, $4::text, $5::boolean)
