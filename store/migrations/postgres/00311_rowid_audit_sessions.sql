-- +goose Up
-- (postgres flavour of ../sqlite/00311_rowid_audit_sessions.sql, which
-- also turns SQLite's WITHOUT ROWID tables of 00310 back into rowid
-- tables; PostgreSQL's tables are heaps either way.) The target index
-- gains id, so "the events of this user, newest first" reads one index
-- range in order.
DROP INDEX audit_events_tenant_target;
CREATE INDEX audit_events_tenant_target ON audit_events (tenant_id, target_id, id);

-- +goose Down
DROP INDEX audit_events_tenant_target;
CREATE INDEX audit_events_tenant_target ON audit_events (tenant_id, target_id);
