-- When to refresh a connection's access token: ahead of its expiry by a share of its life (at
-- most five minutes), so that short-lived tokens are not refreshed on every use. 0: at once.
ALTER TABLE ms_connections ADD COLUMN access_refresh_at BIGINT NOT NULL DEFAULT 0;

-- Whether the member is still to be told, once, on the space page that the connection needs a
-- new sign-in: raised when it becomes Needs reconnect, lowered when the notice is shown.
ALTER TABLE ms_connections ADD COLUMN notice_pending BOOLEAN NOT NULL DEFAULT FALSE;

-- The encryption certificate a rich subscription was made or last moved to (NULL: basic), so
-- that `kehai keys rotate-cert` knows which subscriptions still use an old private key.
ALTER TABLE ms_connections ADD COLUMN subscription_certificate_id TEXT;
