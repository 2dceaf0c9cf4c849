-- Connections to any presence provider, not only Microsoft Teams: `ms_connections` becomes
-- `connections` with a `provider` column, so that a member can connect one account per provider
-- (Teams and Google Calendar, say). Every row is carried over as it was, with its id: sealed
-- values are bound to `connection:{id}:{column}` and open as before. docs/privacy.md lists every
-- column and why it is kept (a test compares the two).

CREATE TABLE connections (
    id                          TEXT PRIMARY KEY,
    account_id                  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider                    TEXT NOT NULL,      -- `msteams`, …
    external_tenant             TEXT NOT NULL,      -- the organization at the provider (Microsoft's tenant id)
    external_user               TEXT NOT NULL,      -- the account at the provider (Graph's user object id)
    access_token                TEXT NOT NULL,      -- sealed
    access_expires_at           INTEGER NOT NULL,
    access_refresh_at           INTEGER NOT NULL,
    refresh_token               TEXT,               -- sealed; rotates on refresh
    refresh_expires_at          INTEGER,
    subscription_id             TEXT,
    subscription_expires_at     INTEGER,
    subscription_certificate_id TEXT,
    client_state                TEXT,               -- sealed: the secret the provider's notifications carry
    state                       TEXT NOT NULL CHECK (state IN ('connected', 'needs_reconnect', 'error')),
    last_error                  TEXT,
    last_sequence               TEXT,               -- the provider's ordering key of the presence last applied
    next_check_at               INTEGER,               -- when to read the presence again (one that changes with the clock)
    notice_pending              BOOLEAN NOT NULL DEFAULT FALSE,
    claimed_by                  TEXT,
    claimed_until               INTEGER,
    refreshing_by               TEXT,
    refreshing_until            INTEGER,
    connected_at                INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    -- One connection per member and provider.
    UNIQUE (account_id, provider)
);
-- One account at a provider is connected once: notifications are routed by it, and Graph allows
-- one presence subscription per app and user.
CREATE UNIQUE INDEX connections_by_external_user ON connections (provider, external_tenant, external_user);
-- Every notification is admitted by its subscription.
CREATE INDEX connections_by_subscription ON connections (provider, subscription_id);
-- The renewal sweep looks for each provider's soonest-lapsing subscriptions (no scan).
CREATE INDEX connections_by_expiry ON connections (provider, subscription_expires_at);
-- After `kehai keys rotate-cert`: subscriptions still encrypted for a retired certificate.
CREATE INDEX connections_by_certificate ON connections (subscription_certificate_id);
-- The schedule wakes connections whose presence changes with the clock (nearly always none).
CREATE INDEX connections_by_next_check ON connections (next_check_at);

INSERT INTO connections (
    id, account_id, provider, external_tenant, external_user, access_token, access_expires_at,
    access_refresh_at, refresh_token, refresh_expires_at, subscription_id, subscription_expires_at,
    subscription_certificate_id, client_state, state, last_error, last_sequence, next_check_at,
    notice_pending, claimed_by, claimed_until, refreshing_by, refreshing_until, connected_at, updated_at
)
SELECT
    id, account_id, 'msteams', ms_tenant_id, ms_user_id, access_token, access_expires_at,
    access_refresh_at, refresh_token, refresh_expires_at, subscription_id, subscription_expires_at,
    subscription_certificate_id, client_state, state, last_error, last_sequence, NULL,
    notice_pending, claimed_by, claimed_until, refreshing_by, refreshing_until, connected_at, updated_at
FROM ms_connections;

-- The spaces a connection is used in, each with its ON/OFF toggle.
CREATE TABLE connection_spaces (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    space_id      TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    enabled       BOOLEAN NOT NULL,
    PRIMARY KEY (connection_id, space_id)
);
INSERT INTO connection_spaces (connection_id, space_id, enabled)
SELECT connection_id, space_id, enabled FROM ms_connection_spaces;

DROP TABLE ms_connection_spaces;
DROP TABLE ms_connections;

-- A sign-in in progress is for one provider; those begun before were Microsoft's.
ALTER TABLE oauth_states ADD COLUMN provider TEXT NOT NULL DEFAULT 'msteams';
