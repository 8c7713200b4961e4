-- Bookkeeping of cbs.build_attempts, shared by every function that ends an attempt.
-- PL/pgSQL rather than SQL on the hot path: its plans are cached per session.

CREATE OR REPLACE FUNCTION cbs.close_attempt(build_key text, outcome text, error text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cbs.build_attempts a
       SET finished_at = now(), outcome = close_attempt.outcome, error = close_attempt.error
     WHERE a.build_key = close_attempt.build_key AND a.finished_at IS NULL;
END;
$$;
COMMENT ON FUNCTION cbs.close_attempt(text, text, text) IS
    'Ends the open attempt row of a build with its outcome and error.';

-- Retry delay after the given (1-based) failed attempt: 5 s, 10 s, 20 s, ... capped at 5 min.
CREATE OR REPLACE FUNCTION cbs.retry_backoff(attempt int)
RETURNS interval LANGUAGE sql IMMUTABLE AS $$
    SELECT least(interval '5 seconds' * power(2, greatest(attempt, 1) - 1), interval '5 minutes')
$$;
COMMENT ON FUNCTION cbs.retry_backoff(int) IS
    'Delay before retrying after the given failed attempt: 5 s doubling, at most 5 min.';
