package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// OpenID Connect provider state (package op). See opstate.go in the root
// package and migrations/*/00100_op.sql.

const (
	opAuthRequestNotFound  = "Authorization request not found."
	opTokenNotFound        = "Token not found."
	opRefreshTokenNotFound = "Refresh token not found."
	// opRetention: rows stay this long past their expiry, so a late reuse
	// of a code or refresh token is still recognised as reuse.
	opRetention = 24 * time.Hour
)

const opAuthRequestColumns = `id, tenant_id, client_id, request, user_id, auth_time, session_id, done, code_hash, code_used_at, created_at, expires_at`

func scanOPAuthRequest(sc scanner) (*gatehouse.OPAuthRequest, error) {
	var r gatehouse.OPAuthRequest
	var authTime, created, expires int64
	var used sql.NullInt64
	var request string
	if err := sc.Scan(&r.ID, &r.TenantID, &r.ClientID, &request, &r.UserID, &authTime, &r.SessionID, &r.Done,
		&r.CodeHash, &used, &created, &expires); err != nil {
		return nil, err
	}
	r.Request = []byte(request)
	r.AuthTime, r.CodeUsedAt, r.CreatedAt, r.ExpiresAt = fromTS(authTime), nullTime(used), fromTS(created), fromTS(expires)
	return &r, nil
}

func (t *tx) CreateOPAuthRequest(ctx context.Context, r *gatehouse.OPAuthRequest) error {
	if err := t.purgeOP(ctx); err != nil {
		return err
	}
	now := t.s.now()
	r.CreatedAt, r.ExpiresAt, r.AuthTime = now, normTime(r.ExpiresAt), normTime(r.AuthTime)
	_, err := t.exec(ctx, `INSERT INTO op_auth_requests (`+opAuthRequestColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		r.ID, r.TenantID, r.ClientID, string(r.Request), r.UserID, ts(r.AuthTime), r.SessionID, r.Done,
		r.CodeHash, tsPtr(r.CodeUsedAt), ts(r.CreatedAt), ts(r.ExpiresAt))
	return err
}

// CreateOPAuthCode inserts the row of an authorize request that is
// answered with its code (package op: the request travelled sealed until
// then) and reports false, writing nothing, when a row of that id exists:
// the request was answered before. ON CONFLICT DO NOTHING, so the
// transaction goes on on PostgreSQL too (a failed INSERT would abort it).
func (t *tx) CreateOPAuthCode(ctx context.Context, r *gatehouse.OPAuthRequest) (bool, error) {
	if len(r.CodeHash) == 0 || !r.Done {
		return false, errors.New("sqlstore: CreateOPAuthCode needs an answered request")
	}
	if err := t.purgeOP(ctx); err != nil {
		return false, err
	}
	r.CreatedAt, r.ExpiresAt, r.AuthTime = t.s.now(), normTime(r.ExpiresAt), normTime(r.AuthTime)
	n, err := t.count(ctx, `INSERT INTO op_auth_requests (`+opAuthRequestColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
		r.ID, r.TenantID, r.ClientID, string(r.Request), r.UserID, ts(r.AuthTime), r.SessionID, r.Done,
		r.CodeHash, tsPtr(r.CodeUsedAt), ts(r.CreatedAt), ts(r.ExpiresAt))
	return n == 1, err
}

// CreateOPAuthCodeOfApp is CreateOPAuthCode for a request decided on
// from its app as the caller read it before (op's cache): it writes the
// row only while the app is as read (the same row, appID, last updated at
// appUpdated), and
// reports false, writing nothing, when the app changed or is gone or a row
// of that id exists.
func (t *tx) CreateOPAuthCodeOfApp(ctx context.Context, r *gatehouse.OPAuthRequest, appID string, appUpdated time.Time) (bool, error) {
	if len(r.CodeHash) == 0 || !r.Done {
		return false, errors.New("sqlstore: CreateOPAuthCodeOfApp needs an answered request")
	}
	if err := t.purgeOP(ctx); err != nil {
		return false, err
	}
	r.CreatedAt, r.ExpiresAt, r.AuthTime = t.s.now(), normTime(r.ExpiresAt), normTime(r.AuthTime)
	n, err := t.count(ctx, `INSERT INTO op_auth_requests (`+opAuthRequestColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
		WHERE EXISTS (SELECT 1 FROM apps WHERE tenant_id = $2 AND client_id = $3 AND id = $14 AND updated_at = $13)
		ON CONFLICT (id) DO NOTHING`,
		r.ID, r.TenantID, r.ClientID, string(r.Request), r.UserID, ts(r.AuthTime), r.SessionID, r.Done,
		r.CodeHash, tsPtr(r.CodeUsedAt), ts(r.CreatedAt), ts(r.ExpiresAt), ts(appUpdated), appID)
	return n == 1, err
}

// purgeOP deletes the provider's expired rows, at most once a minute per
// process.
func (t *tx) purgeOP(ctx context.Context) error {
	now := t.s.now()
	// Expired requests go here, a day after their expiry: every sign-in
	// passes by, so no purge job is needed and the table stays the size of
	// the live requests. At most once a minute per process, and by expiry
	// alone so the expires_at index answers it (filtering by tenant too
	// made SQLite walk the tenant's live rows on every authorize request).
	// Tokens are swept by CreateOPToken.
	if last := &t.s.opPurged; now.Unix()-last.Load() >= 60 {
		last.Store(now.Unix())
		if _, err := t.exec(ctx, `DELETE FROM op_auth_requests WHERE expires_at < $1`, ts(now.Add(-opRetention))); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) GetOPAuthRequest(ctx context.Context, tenantID, id string) (*gatehouse.OPAuthRequest, error) {
	var r *gatehouse.OPAuthRequest
	err := t.get(ctx, opAuthRequestNotFound, func(sc scanner) (err error) {
		r, err = scanOPAuthRequest(sc)
		return err
	}, `SELECT `+opAuthRequestColumns+` FROM op_auth_requests WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	return r, err
}

func (t *tx) CompleteOPAuthRequest(ctx context.Context, r *gatehouse.OPAuthRequest) error {
	r.AuthTime = normTime(r.AuthTime)
	return t.affected(ctx, opAuthRequestNotFound,
		`UPDATE op_auth_requests SET user_id = $3, auth_time = $4, session_id = $5, done = $6 WHERE tenant_id = $1 AND id = $2`,
		r.TenantID, r.ID, r.UserID, ts(r.AuthTime), r.SessionID, r.Done)
}

func (t *tx) SetOPAuthCode(ctx context.Context, tenantID, id string, codeHash []byte, expires time.Time) error {
	// A request gets one code: a second callback for it must not mint a
	// second code.
	return t.affected(ctx, opAuthRequestNotFound,
		`UPDATE op_auth_requests SET code_hash = $3, expires_at = $4 WHERE tenant_id = $1 AND id = $2 AND done = $5 AND code_hash IS NULL`,
		tenantID, id, codeHash, ts(expires), true)
}

func (t *tx) UseOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*gatehouse.OPAuthRequest, error) {
	if len(codeHash) == 0 {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, opAuthRequestNotFound)
	}
	n, err := t.count(ctx, `UPDATE op_auth_requests SET code_used_at = $3 WHERE tenant_id = $1 AND code_hash = $2 AND code_used_at IS NULL`,
		tenantID, codeHash, ts(normTime(at)))
	if err != nil {
		return nil, err
	}
	var r *gatehouse.OPAuthRequest
	err = t.get(ctx, opAuthRequestNotFound, func(sc scanner) (err error) {
		r, err = scanOPAuthRequest(sc)
		return err
	}, `SELECT `+opAuthRequestColumns+` FROM op_auth_requests WHERE tenant_id = $1 AND code_hash = $2`, tenantID, codeHash)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return r, gatehouse.Errorf(gatehouse.ECONFLICT, "The authorization code was already used.")
	}
	return r, nil
}

const opTokenColumns = `id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, expires_at, revoked_at`

// Token id prefixes: the provider makes ids with gatehouse.NewIDAt(prefix,
// expiry), so they sort by expiry (migrations 00300).
const (
	opTokenPrefix   = "oat"
	opRefreshPrefix = "ort"
)

// purgeOPTokens deletes the access and refresh tokens a day past their
// expiry (opRetention keeps them so a late reuse is still seen as reuse),
// at most once a minute per process; every grant passes by, so no purge
// job is needed. The tables have no expiry index: ids made by NewIDAt
// sort by expiry, so "id below the cutoff's floor" is a range of the
// primary key holding only expired rows; expires_at < cutoff is checked
// too, so an id of another shape (made by NewID at creation, as before
// migration 00300, or by a caller of its own) is never swept early.
func (t *tx) purgeOPTokens(ctx context.Context, now time.Time) error {
	last := &t.s.opTokensPurged
	if now.Unix()-last.Load() < 60 {
		return nil
	}
	last.Store(now.Unix())
	cutoff := now.Add(-opRetention)
	for _, q := range []struct{ table, prefix string }{{"op_tokens", opTokenPrefix}, {"op_refresh_tokens", opRefreshPrefix}} {
		if _, err := t.exec(ctx, `DELETE FROM `+q.table+` WHERE id < $1 AND expires_at < $2`,
			gatehouse.IDFloor(q.prefix, cutoff), ts(cutoff)); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) CreateOPToken(ctx context.Context, tk *gatehouse.OPToken) error {
	if err := t.purgeOPTokens(ctx, t.s.now()); err != nil {
		return err
	}
	scopes, err := jsonArg(orEmpty(tk.Scopes))
	if err != nil {
		return err
	}
	tk.CreatedAt, tk.ExpiresAt = normTime(tk.CreatedAt), normTime(tk.ExpiresAt)
	return t.execDeferred(ctx, `INSERT INTO op_tokens (`+opTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		tk.ID, tk.TenantID, tk.ClientID, tk.UserID, tk.GrantID, tk.SessionID, scopes, ts(tk.CreatedAt), ts(tk.ExpiresAt), tsPtr(tk.RevokedAt))
}

// pairedTokenQuery reads a paired access token (gatehouse.PairedAccessID)
// from its refresh token's row, as op_tokens' columns: revoked when the
// access token alone or the refresh token (with its grant, session, user
// or client) was revoked.
const pairedTokenQuery = `SELECT id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, access_expires_at,
	COALESCE(access_revoked_at, revoked_at) FROM op_refresh_tokens WHERE tenant_id = $1 AND id = $2 AND access_expires_at IS NOT NULL`

func (t *tx) GetOPToken(ctx context.Context, tenantID, id string) (*gatehouse.OPToken, error) {
	q := `SELECT ` + opTokenColumns + ` FROM op_tokens WHERE tenant_id = $1 AND id = $2`
	key := id
	if refreshID, ok := gatehouse.PairedRefreshID(id); ok {
		q, key = pairedTokenQuery, refreshID
	}
	var tk gatehouse.OPToken
	err := t.get(ctx, opTokenNotFound, func(sc scanner) error {
		var scopes string
		var created, expires int64
		var revoked sql.NullInt64
		if err := sc.Scan(&tk.ID, &tk.TenantID, &tk.ClientID, &tk.UserID, &tk.GrantID, &tk.SessionID, &scopes, &created, &expires, &revoked); err != nil {
			return err
		}
		tk.CreatedAt, tk.ExpiresAt, tk.RevokedAt = fromTS(created), fromTS(expires), nullTime(revoked)
		return unmarshalJSON([]byte(scopes), &tk.Scopes)
	}, q, tenantID, key)
	if err != nil {
		return nil, err
	}
	tk.ID = id
	return &tk, nil
}

const opRefreshColumns = `id, tenant_id, hash, client_id, user_id, grant_id, session_id, rotated_from, scopes, amr, auth_time, created_at, expires_at, used_at, revoked_at`

func (t *tx) CreateOPRefreshToken(ctx context.Context, rt *gatehouse.OPRefreshToken) error {
	// A grant that pairs its access token with this row writes no
	// op_tokens row (CreateOPToken's purge then runs here).
	if err := t.purgeOPTokens(ctx, t.s.now()); err != nil {
		return err
	}
	var accessExp any
	if !rt.AccessExpiresAt.IsZero() {
		if gatehouse.PairedAccessID(rt.ID) == "" {
			return errInternal("create refresh token", errors.New("an access token paired with a refresh token id of another shape"))
		}
		rt.AccessExpiresAt = normTime(rt.AccessExpiresAt)
		accessExp = ts(rt.AccessExpiresAt)
	}
	scopes, err := jsonArg(orEmpty(rt.Scopes))
	if err != nil {
		return err
	}
	amr, err := jsonArg(orEmpty(rt.AMR))
	if err != nil {
		return err
	}
	rt.AuthTime, rt.CreatedAt, rt.ExpiresAt = normTime(rt.AuthTime), normTime(rt.CreatedAt), normTime(rt.ExpiresAt)
	return t.execDeferred(ctx, `INSERT INTO op_refresh_tokens (`+opRefreshColumns+`, access_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		rt.ID, rt.TenantID, rt.Hash, rt.ClientID, rt.UserID, rt.GrantID, rt.SessionID, rt.RotatedFrom, scopes, amr,
		ts(rt.AuthTime), ts(rt.CreatedAt), ts(rt.ExpiresAt), tsPtr(rt.UsedAt), tsPtr(rt.RevokedAt), accessExp)
}

func scanOPRefreshToken(sc scanner) (*gatehouse.OPRefreshToken, error) {
	var rt gatehouse.OPRefreshToken
	var scopes, amr string
	var authTime, created, expires int64
	var used, revoked sql.NullInt64
	if err := sc.Scan(&rt.ID, &rt.TenantID, &rt.Hash, &rt.ClientID, &rt.UserID, &rt.GrantID, &rt.SessionID, &rt.RotatedFrom,
		&scopes, &amr, &authTime, &created, &expires, &used, &revoked); err != nil {
		return nil, err
	}
	rt.AuthTime, rt.CreatedAt, rt.ExpiresAt = fromTS(authTime), fromTS(created), fromTS(expires)
	rt.UsedAt, rt.RevokedAt = nullTime(used), nullTime(revoked)
	if err := unmarshalJSON([]byte(scopes), &rt.Scopes); err != nil {
		return nil, err
	}
	if err := unmarshalJSON([]byte(amr), &rt.AMR); err != nil {
		return nil, err
	}
	return &rt, nil
}

func (t *tx) GetOPRefreshToken(ctx context.Context, tenantID string, hash []byte) (*gatehouse.OPRefreshToken, error) {
	return one(ctx, t, opRefreshTokenNotFound, scanOPRefreshToken,
		`SELECT `+opRefreshColumns+` FROM op_refresh_tokens WHERE tenant_id = $1 AND hash = $2`, tenantID, hash)
}

func (t *tx) UseOPRefreshToken(ctx context.Context, tenantID, id string, at time.Time) error {
	// The condition makes rotation atomic: of two concurrent uses of one
	// token, exactly one changes the row.
	n, err := t.count(ctx, `UPDATE op_refresh_tokens SET used_at = $3 WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL AND revoked_at IS NULL`,
		tenantID, id, ts(normTime(at)))
	if err != nil {
		return err
	}
	if n == 0 {
		return gatehouse.Errorf(gatehouse.ECONFLICT, "The refresh token was already used or revoked.")
	}
	return nil
}

func (t *tx) RevokeOPTokens(ctx context.Context, tenantID string, f gatehouse.OPTokenFilter, at time.Time) (int, error) {
	tables, set, cond, id := []string{"op_tokens", "op_refresh_tokens"}, "revoked_at", "", f.TokenID
	if refreshID, ok := gatehouse.PairedRefreshID(f.TokenID); ok {
		// An access token kept in refresh row refreshID, and nothing else:
		// the refresh token stays live (RFC 7009 section 2.1 lets a server
		// revoke it too, but a client that revokes an access token may
		// well refresh on). A revoked refresh token's access token is
		// revoked already (GetOPToken).
		tables, set, id = []string{"op_refresh_tokens"}, "access_revoked_at", refreshID
		cond = " AND access_expires_at IS NOT NULL AND access_revoked_at IS NULL"
	}
	var w where
	w.add("tenant_id = ?", tenantID)
	w.add("revoked_at IS NULL")
	n := 0
	for _, c := range []struct{ col, val string }{
		{"grant_id", f.GrantID}, {"user_id", f.UserID}, {"session_id", f.SessionID}, {"client_id", f.ClientID}, {"id", id},
	} {
		if c.val != "" {
			w.add(c.col+" = ?", c.val)
			n++
		}
	}
	if n == 0 {
		return 0, errInternal("revoke OP tokens", errNoFilter)
	}
	total := 0
	for _, table := range tables {
		// The revocation time is the last argument: its number follows
		// the filter's.
		args := append(append([]any(nil), w.args...), ts(normTime(at)))
		q := `UPDATE ` + table + ` SET ` + set + ` = $` + strconv.Itoa(len(args)) + w.String() + cond
		c, err := t.count(ctx, q, args...)
		if err != nil {
			return total, err
		}
		total += int(c)
	}
	return total, nil
}

// ListOPSessionClients reads every token of the tenant: the token tables
// have no session index (migrations 00300). The provider, which knows the
// session's user, calls ListOPUserSessionClients instead.
func (t *tx) ListOPSessionClients(ctx context.Context, tenantID, sessionID string) ([]string, error) {
	return t.listSessionClients(ctx, "", tenantID, sessionID, true)
}

// ListOPUserSessionClients is ListOPSessionClients for a session of
// userID: the tokens are read through the (tenant_id, user_id,
// session_id) indexes.
func (t *tx) ListOPUserSessionClients(ctx context.Context, tenantID, userID, sessionID string) ([]string, error) {
	return t.listSessionClients(ctx, "AND user_id = $4", tenantID, sessionID, true, userID)
}

// listSessionClients lists the clients of session sessionID; user is a
// further condition on $4.
func (t *tx) listSessionClients(ctx context.Context, user string, args ...any) ([]string, error) {
	var out []string
	err := t.each(ctx, func(sc scanner) error {
		var c string
		if err := sc.Scan(&c); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	}, `SELECT client_id FROM op_tokens WHERE tenant_id = $1 AND session_id = $2 `+user+`
		UNION SELECT client_id FROM op_refresh_tokens WHERE tenant_id = $1 AND session_id = $2 `+user+`
		UNION SELECT client_id FROM op_auth_requests WHERE tenant_id = $1 AND session_id = $2 AND done = $3 `+user+`
		ORDER BY 1`, args...)
	return out, err
}

// errNoFilter: an empty filter would revoke every token of the tenant.
var errNoFilter = errors.New("empty token filter")
