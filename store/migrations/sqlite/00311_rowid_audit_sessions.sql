-- +goose Up
-- 00310 made audit_events and sessions WITHOUT ROWID tables. Measured
-- afterwards with populated tables and group-commit batches, that is
-- slower: a session's random id then places the whole row, and the
-- (tenant_id, connection_id, id) index entry, at a random leaf (72 µs per
-- session insert against 47 µs in batches of four over 50,000 sessions),
-- and audit rows gain nothing over a rowid table. Back to rowid tables
-- (sqlite flavour; keep it in step with ../postgres/00311_rowid_audit_sessions.sql,
-- where tables are heaps either way), keeping what 00310 removed:
--
-- audit_events: one unique index (tenant_id, id) serves a tenant's
-- newest-first pages and an id's uniqueness within its tenant; no index
-- of id alone (nothing reads an event by id without its tenant).
-- The target index gains id, so "the events of this user, newest first"
-- reads one index range in order (without it SQLite walks the tenant's
-- id index and filters). sessions: no sessions_expires (no query uses it).
CREATE TABLE audit_events_new (
    id          TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    at          INTEGER NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    request_id  TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO audit_events_new (id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details)
    SELECT id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details FROM audit_events ORDER BY tenant_id, id;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE UNIQUE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
CREATE INDEX audit_events_tenant_action ON audit_events (tenant_id, action, id);
CREATE INDEX audit_events_tenant_target ON audit_events (tenant_id, target_id, id);

CREATE TABLE sessions_new (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    connection_id TEXT NOT NULL DEFAULT '',
    session_index TEXT NOT NULL DEFAULT '',
    auth_time     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    idle_expiry   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO sessions_new (id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at)
    SELECT id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_connection ON sessions (tenant_id, connection_id);

-- +goose Down
CREATE TABLE sessions_new (
    id            TEXT NOT NULL PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    connection_id TEXT NOT NULL DEFAULT '',
    session_index TEXT NOT NULL DEFAULT '',
    auth_time     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    idle_expiry   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO sessions_new (id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at)
    SELECT id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_connection ON sessions (tenant_id, connection_id);

CREATE TABLE audit_events_new (
    id          TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    at          INTEGER NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    request_id  TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
INSERT INTO audit_events_new (id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details)
    SELECT id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
CREATE INDEX audit_events_tenant_action ON audit_events (tenant_id, action, id);
CREATE INDEX audit_events_tenant_target ON audit_events (tenant_id, target_id);
