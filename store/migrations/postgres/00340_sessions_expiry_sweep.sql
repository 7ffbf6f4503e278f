-- +goose Up
-- Expired sessions are deleted (sqlstore purgeSessions, a batch at most
-- once a minute per process) through this index. 00310 dropped it when
-- no query used it; without it a sweep would read the whole table. Its
-- keys grow with time (a session's absolute expiry is its creation plus
-- a fixed lifetime), so each login's entry goes to the index's last page.
-- Same statement on both engines; keep ../{sqlite,postgres} in step.
CREATE INDEX sessions_expires ON sessions (expires_at);

-- +goose Down
DROP INDEX sessions_expires;
