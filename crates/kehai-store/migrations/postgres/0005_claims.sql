-- Work that one kehai instance at a time may do, claimed until a time: an instance that dies
-- holds nothing for longer than its claim (see docs/architecture.md, "Several instances").

-- Named jobs (the reconciliation) and each running instance's heartbeat (`instance/<id>`).
CREATE TABLE claims (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    held_until BIGINT NOT NULL
);

-- A connection's upkeep (renewing its subscription, refreshing its tokens).
ALTER TABLE ms_connections ADD COLUMN claimed_by TEXT;
ALTER TABLE ms_connections ADD COLUMN claimed_until BIGINT;

-- The renewal sweep looks for the soonest-lapsing subscriptions (100,000 connections: no scan).
CREATE INDEX ms_connections_by_expiry ON ms_connections (subscription_expires_at);
