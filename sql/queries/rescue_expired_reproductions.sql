SELECT cbs.rescue_expired_reproductions()
