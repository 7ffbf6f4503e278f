package sqlstore

import (
	"context"
	"strconv"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

const sessionColumns = `id, tenant_id, user_id, connection_id, session_index, auth_time, created_at, last_seen_at, idle_expiry, expires_at`

const sessionNotFound = "Session not found."

func scanSession(sc scanner) (*gatehouse.Session, error) {
	var s gatehouse.Session
	var auth, created, seen, idle, expires int64
	if err := sc.Scan(&s.ID, &s.TenantID, &s.UserID, &s.ConnectionID, &s.SessionIndex, &auth, &created, &seen, &idle, &expires); err != nil {
		return nil, err
	}
	s.AuthTime, s.CreatedAt, s.LastSeenAt = fromTS(auth), fromTS(created), fromTS(seen)
	s.IdleExpiry, s.ExpiresAt = fromTS(idle), fromTS(expires)
	return &s, nil
}

func (t *tx) CreateSession(ctx context.Context, s *gatehouse.Session) error {
	if s.ID == "" {
		return gatehouse.FieldError("id", "A session needs the digest of its token as ID.")
	}
	t.normSession(s)
	// A session belongs to a live user of its tenant.
	ok, err := t.exists(ctx, `SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, s.TenantID, s.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, userNotFound)
	}
	if err := t.purgeSessions(ctx); err != nil {
		return err
	}
	return t.guardStmt(ctx, func() error {
		_, err := t.exec(ctx, insertSessionSQL, sessionArgs(s)...)
		return err
	})
}

// Expired sessions are deleted an hour after their absolute expiry (a
// session is never used past it: session.Manager checks both expiries),
// by whichever login creates a session next, in batches: no purge job,
// and no login's transaction grows with a backlog.
const (
	sessionRetention  = time.Hour
	sessionPurgeBatch = 1000
)

// purgeSessions deletes up to sessionPurgeBatch expired sessions, at most
// once a minute per process, or a second after a full batch so a backlog
// (the first purge after an upgrade) drains quickly in small steps. The
// sessions_expires index (migration 00340) answers it.
func (t *tx) purgeSessions(ctx context.Context) error {
	now := t.s.now()
	next := &t.s.sessionsPurgeAfter
	if now.Unix() < next.Load() {
		return nil
	}
	next.Store(now.Unix() + 60)
	n, err := t.count(ctx, `DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT `+
		strconv.Itoa(sessionPurgeBatch)+`)`, ts(now.Add(-sessionRetention)))
	if err != nil {
		return err
	}
	if n == sessionPurgeBatch {
		next.Store(now.Unix() + 1)
	}
	return nil
}

func (t *tx) normSession(s *gatehouse.Session) {
	now := t.s.now()
	s.CreatedAt = now
	if s.LastSeenAt.IsZero() {
		s.LastSeenAt = now
	}
	if s.AuthTime.IsZero() {
		s.AuthTime = now
	}
	s.AuthTime, s.LastSeenAt = normTime(s.AuthTime), normTime(s.LastSeenAt)
	s.IdleExpiry, s.ExpiresAt = normTime(s.IdleExpiry), normTime(s.ExpiresAt)
}

const insertSessionSQL = `INSERT INTO sessions (` + sessionColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

// sessionArgs are insertSessionSQL's values of s.
func sessionArgs(s *gatehouse.Session) []any {
	return []any{s.ID, s.TenantID, s.UserID, s.ConnectionID, s.SessionIndex, ts(s.AuthTime), ts(s.CreatedAt),
		ts(s.LastSeenAt), ts(s.IdleExpiry), ts(s.ExpiresAt)}
}

// GetSession returns the session with that ID, expired or not: the
// caller judges expiry with its own clock.
func (t *tx) GetSession(ctx context.Context, id string) (*gatehouse.Session, error) {
	return one(ctx, t, sessionNotFound, scanSession, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id)
}

func (t *tx) TouchSession(ctx context.Context, id string, lastSeen, idleExpiry time.Time) error {
	return t.affected(ctx, sessionNotFound, `UPDATE sessions SET last_seen_at = $2, idle_expiry = $3 WHERE id = $1`,
		id, ts(lastSeen), ts(idleExpiry))
}

func (t *tx) DeleteSession(ctx context.Context, id string) error {
	return t.affected(ctx, sessionNotFound, `DELETE FROM sessions WHERE id = $1`, id)
}

func (t *tx) DeleteUserSessions(ctx context.Context, tenantID, userID string) (int, error) {
	n, err := t.count(ctx, `DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
	return int(n), err
}
