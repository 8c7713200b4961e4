-- Returns the delivery id (the same one when the url was already registered).
SELECT cbs.add_callback($1::text, $2::text)
