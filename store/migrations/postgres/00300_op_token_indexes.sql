-- +goose Up
-- Fewer index writes per token (issue 10), PostgreSQL flavour; keep it in
-- step with ../sqlite/00300_op_token_indexes.sql. Every access token and
-- refresh token was written to its table, its primary key's index and
-- four or five secondary indexes (grant, user, session, expiry, hash);
-- now to the table, its primary key and one or two indexes:
--
-- * one index (tenant_id, user_id, session_id) serves revocation by user,
--   by grant (the provider always knows the grant's user: RevokeOPTokens
--   with UserID and GrantID reads the user's tokens only) and the clients
--   of a signed-out session (ListOPUserSessionClients);
-- * no expiry index: new tokens' ids sort by expiry (gatehouse.NewIDAt),
--   so the sweep of expired rows is a range of the primary key, which
--   compares ids byte-wise (COLLATE "C") whatever the database's locale;
-- * refresh tokens keep their unique (tenant_id, hash): the grant's lookup.
--
-- The rows stay as they are; older ids sort by creation, which is before
-- their expiry, so the sweep (id below the cutoff's floor AND expires_at
-- below the cutoff) still never takes a live one.
DROP INDEX op_tokens_grant;
DROP INDEX op_tokens_user;
DROP INDEX op_tokens_session;
DROP INDEX op_tokens_expires;
ALTER TABLE op_tokens ALTER COLUMN id TYPE TEXT COLLATE "C";
CREATE INDEX op_tokens_user ON op_tokens (tenant_id, user_id, session_id);

DROP INDEX op_refresh_tokens_grant;
DROP INDEX op_refresh_tokens_user;
DROP INDEX op_refresh_tokens_session;
DROP INDEX op_refresh_tokens_expires;
ALTER TABLE op_refresh_tokens ALTER COLUMN id TYPE TEXT COLLATE "C";
CREATE INDEX op_refresh_tokens_user ON op_refresh_tokens (tenant_id, user_id, session_id);

-- +goose Down
DROP INDEX op_refresh_tokens_user;
ALTER TABLE op_refresh_tokens ALTER COLUMN id TYPE TEXT COLLATE "default";
CREATE INDEX op_refresh_tokens_grant ON op_refresh_tokens (tenant_id, grant_id);
CREATE INDEX op_refresh_tokens_user ON op_refresh_tokens (tenant_id, user_id);
CREATE INDEX op_refresh_tokens_session ON op_refresh_tokens (tenant_id, session_id);
CREATE INDEX op_refresh_tokens_expires ON op_refresh_tokens (expires_at);

DROP INDEX op_tokens_user;
ALTER TABLE op_tokens ALTER COLUMN id TYPE TEXT COLLATE "default";
CREATE INDEX op_tokens_grant ON op_tokens (tenant_id, grant_id);
CREATE INDEX op_tokens_user ON op_tokens (tenant_id, user_id);
CREATE INDEX op_tokens_session ON op_tokens (tenant_id, session_id);
CREATE INDEX op_tokens_expires ON op_tokens (expires_at);
