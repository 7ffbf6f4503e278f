-- +goose Up
-- Webhook secret rotation with overlap (postgres flavour; keep it in step with
-- ../sqlite/00201_webhook_rotation.sql): after a rotation the previous
-- secret, still sealed (aad = webhook id), also signs deliveries until
-- previous_until, so receivers can switch secrets without missing one.
ALTER TABLE webhooks ADD COLUMN previous_secret BYTEA;
ALTER TABLE webhooks ADD COLUMN previous_until BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE webhooks DROP COLUMN previous_until;
ALTER TABLE webhooks DROP COLUMN previous_secret;
