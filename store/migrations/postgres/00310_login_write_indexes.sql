-- +goose Up
-- Fewer index writes per login (issue 10; postgres flavour, keep it in
-- step with ../sqlite/00310_login_write_indexes.sql).
--
-- audit_events: the primary key becomes (tenant_id, id), which serves a
-- tenant's newest-first pages, so the separate (tenant_id, id) index goes:
-- one index write less per event. An id stays unique within its tenant
-- (ids are random 128-bit values; nothing reads an event by id alone).
-- (tenant_id, at) stays: ids follow the clock of the replica that made
-- them, not the event's time, so a time filter cannot use the id order.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
DROP INDEX audit_events_tenant_id;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (tenant_id, id);

-- sessions_expires: no query uses it (sessions are read and deleted by id,
-- by user and by connection).
DROP INDEX sessions_expires;

-- +goose Down
CREATE INDEX sessions_expires ON sessions (expires_at);
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id);
CREATE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);
