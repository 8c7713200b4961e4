-- Checks a request's spec before any version is resolved (cbs.checked_spec without versions): the message is the one its spec would get at submit.
SELECT cbs.checked_spec($1::jsonb, false)
