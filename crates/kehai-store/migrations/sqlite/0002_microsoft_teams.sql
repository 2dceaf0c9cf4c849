-- The Microsoft Teams integration. docs/privacy.md lists every column and why it is kept (a
-- test compares the two). Tokens, client states, nonces, PKCE verifiers and private keys are
-- sealed (AES-256-GCM, bound to their row) before they are written: `sealed` below.

-- One connection per member account to one Microsoft (work or school) account.
CREATE TABLE ms_connections (
    id                      TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL UNIQUE REFERENCES accounts (id) ON DELETE CASCADE,
    ms_tenant_id            TEXT NOT NULL,
    ms_user_id              TEXT NOT NULL,          -- Graph object id, from GET /me/presence
    access_token            TEXT NOT NULL,          -- sealed
    access_expires_at       INTEGER NOT NULL,
    refresh_token           TEXT,                   -- sealed; rotates on every refresh
    refresh_expires_at      INTEGER,                -- when it lapses if unused (Microsoft: 90 days)
    subscription_id         TEXT,
    subscription_expires_at INTEGER,
    client_state            TEXT,                   -- sealed
    state                   TEXT NOT NULL CHECK (state IN ('connected', 'needs_reconnect', 'error')),
    last_error              TEXT,                   -- plain words for the member, never a secret
    connected_at            INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);
-- One Microsoft account is connected once: Graph allows one presence subscription per app and
-- user, and notifications are routed by it.
CREATE UNIQUE INDEX ms_connections_by_ms_user ON ms_connections (ms_tenant_id, ms_user_id);
CREATE INDEX ms_connections_by_subscription ON ms_connections (subscription_id);

-- The spaces a connection is used in, each with its ON/OFF toggle.
CREATE TABLE ms_connection_spaces (
    connection_id TEXT NOT NULL REFERENCES ms_connections (id) ON DELETE CASCADE,
    space_id      TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    enabled       BOOLEAN NOT NULL,
    PRIMARY KEY (connection_id, space_id)
);

-- Sign-ins in progress: single-use, ten minutes, bound to the session and the space. Kept in
-- the database so that any instance can finish a sign-in another one started.
CREATE TABLE oauth_states (
    state_hash    TEXT PRIMARY KEY,                 -- SHA-256 of the state parameter
    session_hash  TEXT NOT NULL,
    space_id      TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    nonce         TEXT NOT NULL,                    -- sealed
    pkce_verifier TEXT NOT NULL,                    -- sealed
    expires_at    INTEGER NOT NULL
);
CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at);

-- The certificates Graph encrypts rich notifications for; the newest live one is current.
CREATE TABLE encryption_certificates (
    id          TEXT PRIMARY KEY,                   -- the encryptionCertificateId given to Graph
    certificate TEXT NOT NULL,                      -- base64 DER, public
    private_key TEXT NOT NULL,                      -- sealed PKCS#8
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
