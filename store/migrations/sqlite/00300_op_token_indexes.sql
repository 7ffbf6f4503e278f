-- +goose Up
-- Fewer index writes per token (issue 10), SQLite flavour; keep it in step
-- with ../postgres/00300_op_token_indexes.sql. Every access token and
-- refresh token was written to its table, its primary key's index and
-- four or five secondary indexes (grant, user, session, expiry, hash);
-- now to one clustered table and one or two indexes:
--
-- * the tables are WITHOUT ROWID, clustered by id: the primary key is the
--   table (no separate index for it);
-- * one index (tenant_id, user_id, session_id) serves revocation by user,
--   by grant (the provider always knows the grant's user: RevokeOPTokens
--   with UserID and GrantID reads the user's tokens only) and the clients
--   of a signed-out session (ListOPUserSessionClients);
-- * no expiry index: new tokens' ids sort by expiry (gatehouse.NewIDAt),
--   so the sweep of expired rows is a range of the primary key;
-- * refresh tokens keep their unique (tenant_id, hash): the grant's lookup.
--
-- The rows are copied as they are; older ids sort by creation, which is
-- before their expiry, so the sweep (id below the cutoff's floor AND
-- expires_at below the cutoff) still never takes a live one.
CREATE TABLE op_tokens_new (
    id         TEXT NOT NULL PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    grant_id   TEXT NOT NULL DEFAULT '',
    session_id TEXT NOT NULL DEFAULT '',
    scopes     TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;
INSERT INTO op_tokens_new (id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, expires_at, revoked_at)
    SELECT id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, expires_at, revoked_at FROM op_tokens;
DROP TABLE op_tokens;
ALTER TABLE op_tokens_new RENAME TO op_tokens;
CREATE INDEX op_tokens_user ON op_tokens (tenant_id, user_id, session_id);

CREATE TABLE op_refresh_tokens_new (
    id           TEXT NOT NULL PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hash         BLOB NOT NULL,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    grant_id     TEXT NOT NULL,
    session_id   TEXT NOT NULL DEFAULT '',
    rotated_from TEXT NOT NULL DEFAULT '',
    scopes       TEXT NOT NULL DEFAULT '[]',
    amr          TEXT NOT NULL DEFAULT '[]',
    auth_time    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    revoked_at   INTEGER
) WITHOUT ROWID;
INSERT INTO op_refresh_tokens_new (id, tenant_id, hash, client_id, user_id, grant_id, session_id, rotated_from, scopes, amr, auth_time, created_at, expires_at, used_at, revoked_at)
    SELECT id, tenant_id, hash, client_id, user_id, grant_id, session_id, rotated_from, scopes, amr, auth_time, created_at, expires_at, used_at, revoked_at FROM op_refresh_tokens;
DROP TABLE op_refresh_tokens;
ALTER TABLE op_refresh_tokens_new RENAME TO op_refresh_tokens;
CREATE UNIQUE INDEX op_refresh_tokens_hash ON op_refresh_tokens (tenant_id, hash);
CREATE INDEX op_refresh_tokens_user ON op_refresh_tokens (tenant_id, user_id, session_id);

-- +goose Down
CREATE TABLE op_tokens_old (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    grant_id   TEXT NOT NULL DEFAULT '',
    session_id TEXT NOT NULL DEFAULT '',
    scopes     TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
INSERT INTO op_tokens_old (id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, expires_at, revoked_at)
    SELECT id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, expires_at, revoked_at FROM op_tokens;
DROP TABLE op_tokens;
ALTER TABLE op_tokens_old RENAME TO op_tokens;
CREATE INDEX op_tokens_grant ON op_tokens (tenant_id, grant_id);
CREATE INDEX op_tokens_user ON op_tokens (tenant_id, user_id);
CREATE INDEX op_tokens_session ON op_tokens (tenant_id, session_id);
CREATE INDEX op_tokens_expires ON op_tokens (expires_at);

CREATE TABLE op_refresh_tokens_old (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hash         BLOB NOT NULL,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    grant_id     TEXT NOT NULL,
    session_id   TEXT NOT NULL DEFAULT '',
    rotated_from TEXT NOT NULL DEFAULT '',
    scopes       TEXT NOT NULL DEFAULT '[]',
    amr          TEXT NOT NULL DEFAULT '[]',
    auth_time    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    revoked_at   INTEGER
);
INSERT INTO op_refresh_tokens_old (id, tenant_id, hash, client_id, user_id, grant_id, session_id, rotated_from, scopes, amr, auth_time, created_at, expires_at, used_at, revoked_at)
    SELECT id, tenant_id, hash, client_id, user_id, grant_id, session_id, rotated_from, scopes, amr, auth_time, created_at, expires_at, used_at, revoked_at FROM op_refresh_tokens;
DROP TABLE op_refresh_tokens;
ALTER TABLE op_refresh_tokens_old RENAME TO op_refresh_tokens;
CREATE UNIQUE INDEX op_refresh_tokens_hash ON op_refresh_tokens (tenant_id, hash);
CREATE INDEX op_refresh_tokens_grant ON op_refresh_tokens (tenant_id, grant_id);
CREATE INDEX op_refresh_tokens_user ON op_refresh_tokens (tenant_id, user_id);
CREATE INDEX op_refresh_tokens_session ON op_refresh_tokens (tenant_id, session_id);
CREATE INDEX op_refresh_tokens_expires ON op_refresh_tokens (expires_at);
