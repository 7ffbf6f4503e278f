-- +goose Up
-- Fewer b-tree writes per login (issue 10; sqlite flavour, keep it in step
-- with ../postgres/00310_login_write_indexes.sql). Every audited change and
-- every login writes audit_events rows and a session; each b-tree a row
-- goes into is a page to dirty and write to the WAL at commit.
--
-- audit_events: a table keyed by (tenant_id, id) (WITHOUT ROWID) instead of
-- a rowid table + the autoindex of id + the (tenant_id, id) index: one
-- b-tree instead of three serves a tenant's newest-first pages (ORDER BY id
-- DESC within a tenant) and the uniqueness of an id within its tenant (ids
-- are random 128-bit values; nothing reads an event by id alone). The
-- secondary indexes carry (tenant_id, id) as their key's tail, so the
-- action and target filters still list in id order. (tenant_id, at) stays:
-- ids follow the clock of the replica that made them, not the event's
-- time, so a time filter cannot be served by the id order.
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

-- sessions: keyed by id without a rowid (one b-tree instead of two for
-- the row), and without sessions_expires, which no query uses (sessions
-- are read and deleted by id, by user and by connection).
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

-- +goose Down
CREATE TABLE sessions_old (
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
INSERT INTO sessions_old (id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at)
    SELECT id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_old RENAME TO sessions;
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_connection ON sessions (tenant_id, connection_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit_events_old (
    id          TEXT PRIMARY KEY,
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
INSERT INTO audit_events_old (id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details)
    SELECT id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, request_id, details FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_old RENAME TO audit_events;
CREATE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
CREATE INDEX audit_events_tenant_action ON audit_events (tenant_id, action, id);
CREATE INDEX audit_events_tenant_target ON audit_events (tenant_id, target_id);
