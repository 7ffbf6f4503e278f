-- +goose Up
-- Webhooks (package webhook), sqlite flavour. Keep it in step with
-- ../postgres/00200_webhooks.sql. Same conventions as 00001_schema.sql:
-- times are INTEGER microseconds since the epoch, UTC; lists are JSON text.

-- A tenant's endpoint. secret is the signing secret sealed with the root
-- key (aad = id): it is read back to sign every delivery.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL DEFAULT '[]',
    enabled    BOOLEAN NOT NULL,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

-- One outbox event on its way to one webhook. The dispatcher creates the
-- row (once per pair: the unique index makes racing replicas harmless);
-- a sender claims it by counting an attempt and moving next_attempt_at
-- a lease ahead, so no other replica sends it meanwhile; the attempt's
-- outcome then sets status, last_* and the next attempt. body is the
-- exact JSON signed and sent on every attempt.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (tenant_id, webhook_id, id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
