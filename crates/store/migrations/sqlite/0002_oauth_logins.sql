-- Logins in flight through the authorization-code flow: what the callback needs, kept
-- until it arrives (single use) or expires. Keep in step with ../postgres/.
CREATE TABLE oauth_logins (
    state         TEXT    NOT NULL PRIMARY KEY,
    app_id        TEXT    NOT NULL REFERENCES apps (id),
    provider      TEXT    NOT NULL,
    code_verifier TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    return_origin TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX oauth_logins_expiry ON oauth_logins (expires_at);
