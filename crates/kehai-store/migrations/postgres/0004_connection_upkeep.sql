-- When to refresh a connection's access token: ahead of its expiry by a share of its life (at
-- most five minutes), so that short-lived tokens are not refreshed on every use. Existing
-- connections: five minutes ahead, as before.
ALTER TABLE ms_connections ADD COLUMN access_refresh_at BIGINT NOT NULL DEFAULT 0;
UPDATE ms_connections SET access_refresh_at = access_expires_at - 300000;

-- Whether the member is still to be told, once, on the space page that the connection needs a
-- new sign-in: raised when it becomes Needs reconnect, lowered when the notice is shown.
ALTER TABLE ms_connections ADD COLUMN notice_pending BOOLEAN NOT NULL DEFAULT FALSE;

-- The encryption certificate a rich subscription was made or last moved to (NULL: basic), so
-- that `kehai keys rotate-cert` knows which subscriptions still use an old private key.
ALTER TABLE ms_connections ADD COLUMN subscription_certificate_id TEXT;
-- Subscriptions made before were encrypted for the current certificate (rich was the only
-- default); naming it keeps its key until they have moved.
UPDATE ms_connections SET subscription_certificate_id = (
    SELECT id FROM encryption_certificates WHERE retired_at IS NULL ORDER BY created_at DESC, id LIMIT 1
) WHERE subscription_id IS NOT NULL;

-- When a retired certificate was first seen unused: its key goes four hours later (Graph's
-- retries of notifications encrypted for it are over by then).
ALTER TABLE encryption_certificates ADD COLUMN unused_since BIGINT;
