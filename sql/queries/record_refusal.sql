SELECT cbs.record_refusal($1::text)
