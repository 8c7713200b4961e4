-- Fair claiming: cbs.claim_builds serves the clients with queued builds in turn
-- (the one whose last build started longest ago first), so one client's five
-- hundred queued builds cannot hold back another client's single build.

-- Per priority class and client, the queued builds oldest first: claim_builds
-- finds the clients with queued work by skipping from one client to the next in
-- this index (one descent each) and takes a client's oldest build from its head,
-- so a claim never sorts the whole queue. Builds without a client form the group
-- '' (see builds_client_not_empty).
CREATE INDEX builds_queued_fair_idx ON cbs.builds (priority, (coalesce(client, '')), created_at, build_key)
    WHERE status = 'queued';

-- '' stands for "no client" in the claim order and in cbs.clients, so no real
-- client may be called that.
ALTER TABLE cbs.builds ADD CONSTRAINT builds_client_not_empty CHECK (client <> '');

COMMENT ON COLUMN cbs.clients.last_started_at IS
    'When cbs.claim_builds last started one of this client''s builds (its turn in the claim order); the row '''' holds it for builds without a client.';
