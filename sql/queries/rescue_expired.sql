SELECT cbs.rescue_expired()
