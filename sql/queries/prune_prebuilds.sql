SELECT cbs.prune_prebuilds(make_interval(secs => $1::float8))
