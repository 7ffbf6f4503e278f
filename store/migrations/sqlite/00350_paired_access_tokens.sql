-- +goose Up
-- An access token issued together with a refresh token is kept in that
-- refresh token's row instead of a row of its own in op_tokens (issue 10:
-- one INSERT, and the two b-trees of op_tokens, fewer per code and refresh
-- grant). Its id is the refresh row's id under the prefix "oap"
-- (gatehouse.PairedAccessID). access_expires_at is NULL for a refresh token
-- without such an access token (every row before this migration);
-- access_revoked_at records the revocation of the access token alone
-- (RFC 7009); revoked_at, set when the refresh token, its grant, session,
-- user or client is revoked, revokes the paired access token too.
-- Same statements on both engines but for the type; keep ../{sqlite,postgres} in step.
ALTER TABLE op_refresh_tokens ADD COLUMN access_expires_at INTEGER;
ALTER TABLE op_refresh_tokens ADD COLUMN access_revoked_at INTEGER;

-- +goose Down
ALTER TABLE op_refresh_tokens DROP COLUMN access_revoked_at;
ALTER TABLE op_refresh_tokens DROP COLUMN access_expires_at;
