-- +goose Up
-- The one secondary index of each token table (00300) leads with user_id
-- instead of tenant_id. Every query it serves names both (revocation by
-- user, by a grant of a user, the clients of a user's session), and none
-- that names the tenant alone may use it: led by tenant_id, PostgreSQL
-- took it for the refresh token's lookup by (tenant_id, hash) and for
-- GetOPToken's (tenant_id, id) while the tables were not yet analyzed
-- (a fresh database, the first minutes of a busy one), reading every
-- token of the tenant per grant. Same on both engines (keep in step with
-- ../postgres/00320_op_token_user_first.sql).
DROP INDEX op_tokens_user;
CREATE INDEX op_tokens_user ON op_tokens (user_id, tenant_id, session_id);
DROP INDEX op_refresh_tokens_user;
CREATE INDEX op_refresh_tokens_user ON op_refresh_tokens (user_id, tenant_id, session_id);

-- +goose Down
DROP INDEX op_refresh_tokens_user;
CREATE INDEX op_refresh_tokens_user ON op_refresh_tokens (tenant_id, user_id, session_id);
DROP INDEX op_tokens_user;
CREATE INDEX op_tokens_user ON op_tokens (tenant_id, user_id, session_id);
