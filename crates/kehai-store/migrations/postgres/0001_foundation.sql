-- The foundation: spaces, accounts, memberships, guests, avatars and sessions.
--
-- Ids are UUIDs as text and timestamps are milliseconds since the epoch (BIGINT), exactly as in
-- the SQLite migrations, so that one set of queries serves both back ends.

CREATE TABLE spaces (
    id           TEXT PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,        -- looked up on every page and API call
    name         TEXT NOT NULL,
    allow_guests BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,              -- as typed, for display
    email_key     TEXT NOT NULL UNIQUE,       -- lower-cased: accounts are unique case-insensitively
    password_hash TEXT NOT NULL,              -- argon2id PHC string, never the password
    created_at    BIGINT NOT NULL
);

CREATE TABLE memberships (
    space_id   TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('member', 'admin')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (space_id, account_id)
);

-- A guest belongs to one space and lives as long as its session.
CREATE TABLE guests (
    id         TEXT PRIMARY KEY,
    space_id   TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

-- One avatar per person per space. person_id is an account id (kind 'member') or a guest id
-- (kind 'guest'); the presence_* columns are the override an integration sets, all NULL or
-- all set. The override never touches own_emoji.
CREATE TABLE avatars (
    space_id              TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    person_id             TEXT NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('member', 'guest')),
    display_name          TEXT NOT NULL,
    own_emoji             TEXT,
    presence_provider     TEXT,
    presence_availability TEXT,
    presence_activity     TEXT,
    presence_label        TEXT,
    presence_emoji        TEXT,
    presence_since        BIGINT,
    updated_at            BIGINT NOT NULL,
    PRIMARY KEY (space_id, person_id)
);

-- Sessions are found by the SHA-256 of the cookie value: a copy of the database gives no
-- usable session. A guest session is bound to the guest's space.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    person_id  TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('member', 'guest')),
    space_id   TEXT REFERENCES spaces (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at); -- the purge scans by expiry
