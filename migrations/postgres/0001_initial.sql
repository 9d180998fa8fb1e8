-- Tenants, their API keys and allowed redirect origins, pending OAuth
-- authorizations, and provider connections.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE tenant_redirect_origins (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    origin      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, origin)
);

-- Only the SHA-256 of each key is kept; `hint` is its last four characters.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT,
    key_hash      TEXT NOT NULL UNIQUE,
    hint          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

CREATE INDEX api_keys_tenant_id ON api_keys (tenant_id);

-- A pending authorization, keyed by the SHA-256 of its `state` value.
-- `user_id` is '' for the org-wide connection (a real user id is never empty).
CREATE TABLE oauth_states (
    state_hash      TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    redirect_after  TEXT,
    pkce_verifier   TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- One connection per (tenant, provider, user); `user_id` is '' for org-wide.
-- Token columns hold AES-256-GCM ciphertexts that carry their key id.
-- The `user_*` token columns hold Slack's `authed_user` token.
CREATE TABLE connections (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider             TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    account_name         TEXT,
    account_avatar       TEXT,
    scopes               TEXT NOT NULL,
    user_scopes          TEXT NOT NULL DEFAULT '',
    status               TEXT NOT NULL,
    access_token         TEXT NOT NULL,
    refresh_token        TEXT,
    expires_at           TIMESTAMPTZ,
    user_access_token    TEXT,
    user_refresh_token   TEXT,
    user_expires_at      TIMESTAMPTZ,
    connected_at         TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, provider, user_id)
);
