-- Active and revoked tokens, without their hashes.
SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.created_at), '[]') FROM cbs.api_tokens_overview t
