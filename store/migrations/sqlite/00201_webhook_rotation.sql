-- +goose Up
-- Webhook secret rotation with overlap (sqlite flavour; keep it in step with
-- ../postgres/00201_webhook_rotation.sql): after a rotation the previous
-- secret, still sealed (aad = webhook id), also signs deliveries until
-- previous_until, so receivers can switch secrets without missing one.
ALTER TABLE webhooks ADD COLUMN previous_secret BLOB;
ALTER TABLE webhooks ADD COLUMN previous_until INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE webhooks DROP COLUMN previous_until;
ALTER TABLE webhooks DROP COLUMN previous_secret;
