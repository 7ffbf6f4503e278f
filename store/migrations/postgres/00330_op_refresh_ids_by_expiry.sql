-- +goose Up
-- Refresh tokens made before 00300 have ids of their creation time
-- (gatehouse.NewID), which the expiry sweep cannot skip: with the default
-- 30-day refresh tokens, every live one made more than a day before would
-- be read again by every sweep (once a minute) for a month. Their ids are
-- rewritten here to sort by expiry like the ids gatehouse.NewIDAt makes:
-- the first ten characters after "ort_" are the expiry's milliseconds in
-- Crockford's base32 (48 bits: one character of 3, nine of 5), the other
-- sixteen (random) are kept. An id already made by NewIDAt is left as it
-- is (the same characters). rotated_from follows its predecessor first.
-- Refresh token ids are never shown to clients (the token is random and
-- looked up by digest); access token ids are inside the sealed access
-- tokens, so they stay (their life is short: an hour by default).
-- Same statements on both engines (keep in step with
-- ../sqlite/00330_op_refresh_ids_by_expiry.sql).
UPDATE op_refresh_tokens SET rotated_from = (
    SELECT 'ort_' || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 45) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 40) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 35) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 30) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 25) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 20) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 15) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 10) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 5) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((p.expires_at / 1000) >> 0) & 31) + 1 AS INTEGER), 1) || substr(p.id, 15) FROM op_refresh_tokens p
    WHERE p.tenant_id = op_refresh_tokens.tenant_id AND p.id = op_refresh_tokens.rotated_from)
WHERE rotated_from <> '' AND EXISTS (
    SELECT 1 FROM op_refresh_tokens p
    WHERE p.tenant_id = op_refresh_tokens.tenant_id AND p.id = op_refresh_tokens.rotated_from
      AND p.id LIKE 'ort\_%' ESCAPE '\' AND length(p.id) = 30);
UPDATE op_refresh_tokens SET id = 'ort_' || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 45) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 40) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 35) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 30) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 25) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 20) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 15) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 10) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 5) & 31) + 1 AS INTEGER), 1) || substr('0123456789abcdefghjkmnpqrstvwxyz', CAST((((op_refresh_tokens.expires_at / 1000) >> 0) & 31) + 1 AS INTEGER), 1) || substr(op_refresh_tokens.id, 15)
WHERE id LIKE 'ort\_%' ESCAPE '\' AND length(id) = 30;

-- +goose Down
-- The ids stay: they are valid ids of the older schema too.
SELECT 1;
