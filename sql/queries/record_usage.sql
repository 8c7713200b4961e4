SELECT cbs.record_usage($1::timestamptz, $2::text[], $3::int[], $4::int[])
