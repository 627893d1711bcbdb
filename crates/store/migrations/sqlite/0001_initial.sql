-- Keystead schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql: same
-- tables, columns, keys and indexes; only the type names differ (INTEGER/BLOB here,
-- BIGINT/BYTEA there). Times are Unix seconds. Tables are STRICT, so a value of the
-- wrong type is refused instead of stored.

CREATE TABLE apps (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE app_keys (
    key_hash   TEXT    NOT NULL PRIMARY KEY,
    app_id     TEXT    NOT NULL REFERENCES apps (id),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX app_keys_app ON app_keys (app_id);

CREATE TABLE app_origins (
    app_id TEXT NOT NULL REFERENCES apps (id),
    origin TEXT NOT NULL,
    PRIMARY KEY (app_id, origin)
) STRICT;

CREATE TABLE app_providers (
    app_id    TEXT NOT NULL REFERENCES apps (id),
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('oidc')),
    issuer    TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
) STRICT;

CREATE TABLE users (
    id         TEXT    NOT NULL PRIMARY KEY,
    app_id     TEXT    NOT NULL REFERENCES apps (id),
    email      TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (app_id, id)
) STRICT;

CREATE TABLE identities (
    app_id   TEXT NOT NULL,
    provider TEXT NOT NULL,
    subject  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    PRIMARY KEY (app_id, provider, subject),
    FOREIGN KEY (app_id, user_id) REFERENCES users (app_id, id)
) STRICT;
CREATE INDEX identities_user ON identities (app_id, user_id);

CREATE TABLE sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    app_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    FOREIGN KEY (app_id, user_id) REFERENCES users (app_id, id)
) STRICT;
CREATE INDEX sessions_user ON sessions (app_id, user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id),
    created_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE wallets (
    id             TEXT    NOT NULL PRIMARY KEY,
    app_id         TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    record         BLOB    NOT NULL,
    record_version INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (app_id, user_id),
    UNIQUE (app_id, id),
    FOREIGN KEY (app_id, user_id) REFERENCES users (app_id, id)
) STRICT;

CREATE TABLE accounts (
    id         TEXT    NOT NULL PRIMARY KEY,
    wallet_id  TEXT    NOT NULL,
    app_id     TEXT    NOT NULL,
    network    TEXT    NOT NULL,
    family     TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    created_at INTEGER NOT NULL,
    UNIQUE (wallet_id, network, idx),
    UNIQUE (app_id, id),
    FOREIGN KEY (app_id, wallet_id) REFERENCES wallets (app_id, id)
) STRICT;

-- The next nonce to hand out per (chain, sender address). Addresses are stored exactly as
-- the caller gives them: the caller normalises them.
CREATE TABLE nonces (
    chain_id   INTEGER NOT NULL,
    address    TEXT    NOT NULL,
    next_nonce INTEGER NOT NULL CHECK (next_nonce >= 0),
    PRIMARY KEY (chain_id, address)
) STRICT;

CREATE TABLE transactions (
    id              TEXT    NOT NULL PRIMARY KEY,
    app_id          TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
    network         TEXT    NOT NULL,
    chain_id        INTEGER NOT NULL,
    from_address    TEXT    NOT NULL,
    nonce           INTEGER NOT NULL,
    hash            TEXT    NOT NULL,
    raw             BLOB    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('signed', 'pending', 'confirmed', 'failed')),
    block_number    INTEGER,
    error           TEXT,
    idempotency_key TEXT,
    request_hash    TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    FOREIGN KEY (app_id, user_id) REFERENCES users (app_id, id),
    FOREIGN KEY (app_id, account_id) REFERENCES accounts (app_id, id)
) STRICT;
CREATE UNIQUE INDEX transactions_idempotency
    ON transactions (app_id, user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX transactions_status ON transactions (status, created_at);
CREATE INDEX transactions_user ON transactions (app_id, user_id, created_at);
