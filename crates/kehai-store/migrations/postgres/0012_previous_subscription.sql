-- Renewal by replacement (Google's push channels cannot be extended): the channel being replaced
-- keeps delivering beside its successor until the successor is confirmed by its first push, so
-- that no change falls between the two. It shares its successor's token (client_state); its id,
-- the resource it watches and its expiry are kept here until it is ended.
ALTER TABLE connections ADD COLUMN previous_subscription_id TEXT;
ALTER TABLE connections ADD COLUMN previous_subscription_resource TEXT;
ALTER TABLE connections ADD COLUMN previous_subscription_expires_at BIGINT;
CREATE INDEX connections_by_previous_subscription ON connections (provider, previous_subscription_id)
    WHERE previous_subscription_id IS NOT NULL;
