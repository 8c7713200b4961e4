SELECT cbs.prune_clients(make_interval(secs => $1::float8))
