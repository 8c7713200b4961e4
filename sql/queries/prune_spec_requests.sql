SELECT cbs.prune_spec_requests(make_interval(secs => $1::float8))
