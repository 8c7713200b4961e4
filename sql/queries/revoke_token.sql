SELECT cbs.revoke_token($1::text)
