-- +goose Up
-- Gatehouse schema, SQLite flavour. Keep it in step with
-- ../postgres/00001_schema.sql: the same tables, columns, keys and indexes.
--
-- Conventions (both engines):
--   * times are INTEGER microseconds since the Unix epoch, UTC: one encoding
--     that compares, sorts and indexes the same way on both engines;
--   * case-insensitive uniqueness uses a *_key column the store fills with
--     the folded value (gatehouse.NormalizeEmail / FoldKey); the value as
--     sent is kept for display;
--   * optional unique values are '' when absent and the unique index is
--     partial (WHERE x <> ''), so many rows may lack them;
--   * tenant-owned child rows reference their parent through
--     (tenant_id, id), so a row can never point into another tenant.

CREATE TABLE tenants (
    id               TEXT PRIMARY KEY,
    slug             TEXT NOT NULL,
    slug_key         TEXT NOT NULL,
    name             TEXT NOT NULL,
    support_contact  TEXT NOT NULL DEFAULT '',
    admin_groups     TEXT NOT NULL DEFAULT '[]',
    session_idle     INTEGER NOT NULL DEFAULT 0,
    session_absolute INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX tenants_slug_key ON tenants (slug_key);

-- A verified domain belongs to one tenant: home-realm discovery relies on it.
CREATE TABLE tenant_domains (
    domain     TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email         TEXT NOT NULL DEFAULT '',
    email_key     TEXT NOT NULL DEFAULT '',
    username      TEXT NOT NULL DEFAULT '',
    username_key  TEXT NOT NULL DEFAULT '',
    display_name  TEXT NOT NULL DEFAULT '',
    given_name    TEXT NOT NULL DEFAULT '',
    family_name   TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL,
    external_id   TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL,
    attributes    TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login_at INTEGER,
    version       INTEGER NOT NULL,
    -- deleted_at marks a tombstone; it keeps its email, username and
    -- external id reserved until an admin purges it.
    deleted_at    INTEGER,
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX users_email_key ON users (tenant_id, email_key) WHERE email_key <> '';
CREATE UNIQUE INDEX users_username_key ON users (tenant_id, username_key) WHERE username_key <> '';
CREATE UNIQUE INDEX users_external_id ON users (tenant_id, external_id) WHERE external_id <> '';

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX groups_name_key ON groups (tenant_id, name_key);
CREATE UNIQUE INDEX groups_external_id ON groups (tenant_id, external_id) WHERE external_id <> '';

-- The same (group, user) pair may exist once per manager.
CREATE TABLE memberships (
    tenant_id  TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    managed_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id, managed_by),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
-- Covering, so "the groups of these users" reads the index only (without
-- it SQLite walks the tenant's whole primary key).
CREATE INDEX memberships_user ON memberships (tenant_id, user_id, group_id, managed_by);

CREATE TABLE connections (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    name       TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL,
    config     TEXT,
    secrets    BLOB,
    jit        TEXT NOT NULL,
    mapping    TEXT NOT NULL,
    state      TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX connections_tenant ON connections (tenant_id);

-- (connection, subject) is the only identity key: never email.
CREATE TABLE federated_identities (
    tenant_id     TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER,
    PRIMARY KEY (connection_id, subject),
    FOREIGN KEY (tenant_id, connection_id) REFERENCES connections (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX federated_identities_user ON federated_identities (tenant_id, user_id);

CREATE TABLE apps (
    id                        TEXT PRIMARY KEY,
    tenant_id                 TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                      TEXT NOT NULL,
    client_id                 TEXT NOT NULL,
    secret_hash               BLOB,
    is_public                 BOOLEAN NOT NULL,
    redirect_uris             TEXT NOT NULL DEFAULT '[]',
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    allowed_connections       TEXT NOT NULL DEFAULT '[]',
    allowed_groups            TEXT NOT NULL DEFAULT '[]',
    grant_types               TEXT NOT NULL DEFAULT '[]',
    id_token_signing_alg      TEXT NOT NULL DEFAULT '',
    backchannel_logout_uri    TEXT NOT NULL DEFAULT '',
    access_token_ttl          INTEGER NOT NULL DEFAULT 0,
    refresh_token_ttl         INTEGER NOT NULL DEFAULT 0,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);
CREATE UNIQUE INDEX apps_client_id ON apps (tenant_id, client_id);

-- tenant_id is NULL only for tokens that are not scoped to a tenant.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    hash         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (hash);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);

CREATE TABLE scim_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    connection_id TEXT NOT NULL DEFAULT '',
    hash          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE UNIQUE INDEX scim_tokens_hash ON scim_tokens (hash);
CREATE INDEX scim_tokens_tenant ON scim_tokens (tenant_id);

CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    alg         TEXT NOT NULL,
    private_key BLOB NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    not_after   INTEGER
);
CREATE INDEX signing_keys_tenant ON signing_keys (tenant_id, id);

-- id is the digest of the cookie token, never the token.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    connection_id TEXT NOT NULL DEFAULT '',
    session_index TEXT NOT NULL DEFAULT '',
    auth_time     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    idle_expiry   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_connection ON sessions (tenant_id, connection_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- No foreign key: the event recording a tenant's deletion outlives it.
-- DeleteTenant removes the tenant's earlier events itself.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    at          INTEGER NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    request_id  TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
CREATE INDEX audit_events_tenant_action ON audit_events (tenant_id, action, id);
CREATE INDEX audit_events_tenant_target ON audit_events (tenant_id, target_id);

CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_tenant ON outbox (tenant_id);

-- The replay cache every replica shares (flow ids, SAML assertion ids).
CREATE TABLE used_once (
    key     TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE INDEX used_once_expires ON used_once (expires);

-- +goose Down
DROP TABLE used_once;
DROP TABLE outbox;
DROP TABLE audit_events;
DROP TABLE sessions;
DROP TABLE signing_keys;
DROP TABLE scim_tokens;
DROP TABLE api_tokens;
DROP TABLE apps;
DROP TABLE federated_identities;
DROP TABLE connections;
DROP TABLE memberships;
DROP TABLE groups;
DROP TABLE users;
DROP TABLE tenant_domains;
DROP TABLE tenants;
