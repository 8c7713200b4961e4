-- $1: how long a worker may go unseen, in seconds.
SELECT cbs.forget_workers(make_interval(secs => $1::float8))
