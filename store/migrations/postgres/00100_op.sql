-- +goose Up
-- OpenID Connect provider state (package op), PostgreSQL flavour. Keep it in
-- step with ../sqlite/00100_op.sql. Same conventions as 00001_schema.sql:
-- times are BIGINT microseconds since the epoch, UTC; lists are JSON text.
-- Token values are never stored: codes and refresh tokens by SHA-256
-- digest, access tokens by their random id (the token is that id encrypted
-- under the provider's key).

-- An authorization request, from /authorize until its code is exchanged.
-- The code lives in the same row (code_hash, code_used_at): the row stays
-- after the exchange until expires_at plus a day, so a second use of the
-- code is recognised and revokes the grant.
CREATE TABLE op_auth_requests (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    request      TEXT NOT NULL,
    user_id      TEXT NOT NULL DEFAULT '',
    auth_time    BIGINT NOT NULL DEFAULT 0,
    session_id   TEXT NOT NULL DEFAULT '',
    done         BOOLEAN NOT NULL DEFAULT FALSE,
    code_hash    BYTEA,
    code_used_at BIGINT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX op_auth_requests_code ON op_auth_requests (tenant_id, code_hash) WHERE code_hash IS NOT NULL;
CREATE INDEX op_auth_requests_expires ON op_auth_requests (expires_at);

-- Access tokens by id (jti), for revocation and userinfo/introspection.
CREATE TABLE op_tokens (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    grant_id   TEXT NOT NULL DEFAULT '',
    session_id TEXT NOT NULL DEFAULT '',
    scopes     TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX op_tokens_grant ON op_tokens (tenant_id, grant_id);
CREATE INDEX op_tokens_user ON op_tokens (tenant_id, user_id);
CREATE INDEX op_tokens_session ON op_tokens (tenant_id, session_id);
CREATE INDEX op_tokens_expires ON op_tokens (expires_at);

-- Refresh tokens by digest. grant_id is the family: every token rotated
-- from the same authorization shares it, and a reused (already rotated)
-- token revokes the whole family.
CREATE TABLE op_refresh_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hash         BYTEA NOT NULL,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    grant_id     TEXT NOT NULL,
    session_id   TEXT NOT NULL DEFAULT '',
    rotated_from TEXT NOT NULL DEFAULT '',
    scopes       TEXT NOT NULL DEFAULT '[]',
    amr          TEXT NOT NULL DEFAULT '[]',
    auth_time    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX op_refresh_tokens_hash ON op_refresh_tokens (tenant_id, hash);
CREATE INDEX op_refresh_tokens_grant ON op_refresh_tokens (tenant_id, grant_id);
CREATE INDEX op_refresh_tokens_user ON op_refresh_tokens (tenant_id, user_id);
CREATE INDEX op_refresh_tokens_session ON op_refresh_tokens (tenant_id, session_id);
CREATE INDEX op_refresh_tokens_expires ON op_refresh_tokens (expires_at);

-- +goose Down
DROP TABLE op_refresh_tokens;
DROP TABLE op_tokens;
DROP TABLE op_auth_requests;
