package sqlstore

import (
	"context"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Fast paths of the OpenID provider (package op), found by type assertion
// like those of fastpath.go, so gatehouse.Store and gatehouse.Tx are
// unchanged.

// LookupTenantRef is GetTenantBySlug as one statement on the reader pool,
// outside a transaction, and without the tenant's domains (Domains is
// nil): every request to the provider resolves its tenant from the path,
// and the BEGIN/COMMIT of a View plus the domains query were most of the
// cost of that (10 % of a code exchange's CPU). A single SELECT reads one
// consistent snapshot on both engines. No cache: a deleted or renamed
// tenant is gone at the next request.
func (s *Store) LookupTenantRef(ctx context.Context, slug string) (*gatehouse.Tenant, error) {
	return readOne(ctx, s, tenantNotFound, scanTenant, `SELECT `+tenantColumns+` FROM tenants WHERE slug_key = $1`, gatehouse.FoldKey(slug))
}

// LookupAppByClientID is GetAppByClientID as one statement on the reader
// pool, outside a transaction (the authorize endpoint's read of its
// client). No cache: a changed or deleted app is seen at the next request.
func (s *Store) LookupAppByClientID(ctx context.Context, tenantID, clientID string) (*gatehouse.App, error) {
	return readOne(ctx, s, appNotFound, scanApp, `SELECT `+appColumns+` FROM apps WHERE tenant_id = $1 AND client_id = $2`, tenantID, clientID)
}

// LookupOPAuthRequest is GetOPAuthRequest as one statement on the reader
// pool, outside a transaction (the resume step's read of the request).
func (s *Store) LookupOPAuthRequest(ctx context.Context, tenantID, id string) (*gatehouse.OPAuthRequest, error) {
	return readOne(ctx, s, opAuthRequestNotFound, scanOPAuthRequest,
		`SELECT `+opAuthRequestColumns+` FROM op_auth_requests WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

// readOne runs a one-row query on the reader pool, outside a transaction:
// a single statement reads one consistent snapshot on both engines.
func readOne[T any](ctx context.Context, s *Store, notFound string, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	var zero T
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return zero, s.d.mapErr(err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return zero, s.d.mapErr(err)
		}
		return zero, gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", notFound)
	}
	v, err := scan(rows)
	if err != nil {
		return zero, s.d.mapErr(err)
	}
	return v, s.d.mapErr(rows.Close())
}

// GetUserWithoutGroups is GetUser without the user's group names (Groups
// is nil): a token grant reads its user to check it is still active, and
// needs the groups only for the "groups" scope or an app limited to some
// groups; the membership join was two thirds of the read.
func (t *tx) GetUserWithoutGroups(ctx context.Context, tenantID, id string) (*gatehouse.User, error) {
	return one(ctx, t, userNotFound, scanUser, `SELECT `+userColumns+` FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenantID, id)
}

// SpendOPAuthCode is UseOPAuthCode in one statement when the code is
// unspent (UPDATE ... RETURNING, on both engines); only a spent or unknown
// code takes UseOPAuthCode's second read, to tell reuse from nothing.
func (t *tx) SpendOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*gatehouse.OPAuthRequest, error) {
	if len(codeHash) > 0 {
		r, err := one(ctx, t, opAuthRequestNotFound, scanOPAuthRequest,
			`UPDATE op_auth_requests SET code_used_at = $3 WHERE tenant_id = $1 AND code_hash = $2 AND code_used_at IS NULL RETURNING `+opAuthRequestColumns,
			tenantID, codeHash, ts(normTime(at)))
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return r, err
		}
	}
	return t.UseOPAuthCode(ctx, tenantID, codeHash, at)
}

// SpendOPAuthCodeOfApp is SpendOPAuthCode for a client whose app the
// caller read before its transaction (op's cache of apps): in one
// statement it spends the unspent code of clientID only while that app is
// as read (the same row, appID, last updated at appUpdated) and returns
// its request.
// Otherwise it writes nothing and returns ENOTFOUND without saying why
// (the code unknown, spent or another client's; the app changed or gone):
// the caller then reads the app in its transaction and spends the code as
// without this, which tells those apart.
func (t *tx) SpendOPAuthCodeOfApp(ctx context.Context, tenantID string, codeHash []byte, at time.Time, clientID, appID string, appUpdated time.Time) (*gatehouse.OPAuthRequest, error) {
	if len(codeHash) == 0 || clientID == "" {
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", opAuthRequestNotFound)
	}
	return one(ctx, t, opAuthRequestNotFound, scanOPAuthRequest, spendCodeOfAppQuery,
		tenantID, codeHash, ts(normTime(at)), clientID, ts(appUpdated), appID)
}

// spendCodeOfAppQuery is SpendOPAuthCodeOfApp's statement.
const spendCodeOfAppQuery = `UPDATE op_auth_requests SET code_used_at = $3
	WHERE tenant_id = $1 AND code_hash = $2 AND code_used_at IS NULL AND client_id = $4
	AND EXISTS (SELECT 1 FROM apps WHERE tenant_id = $1 AND client_id = $4 AND id = $6 AND updated_at = $5)
	RETURNING ` + opAuthRequestColumns

// spendCodeOfAppWithUserQuery is spendCodeOfAppQuery and the spent
// request's live user in one PostgreSQL statement: the UPDATE runs once,
// as a data-modifying WITH, and the outer SELECT joins what it returned.
var spendCodeOfAppWithUserQuery = `WITH spent AS (` + spendCodeOfAppQuery + `)
	SELECT ` + prefixed("s.", opAuthRequestColumns) + `, ` + liveUserColumns + `
	FROM spent s
	` + liveUserJoin(postgresDialect, "s")

// SpendOPAuthCodeOfAppWithUser is SpendOPAuthCodeOfApp that also returns
// the request's user without groups, nil when deleted or gone: what a code
// grant checks next. On PostgreSQL it is one statement, a round trip of
// the four a code grant took; SQLite, where statements cost no round trip
// and WITH cannot hold an UPDATE, runs the spend and the read.
func (t *tx) SpendOPAuthCodeOfAppWithUser(ctx context.Context, tenantID string, codeHash []byte, at time.Time, clientID, appID string, appUpdated time.Time) (*gatehouse.OPAuthRequest, *gatehouse.User, error) {
	if t.s.d != postgresDialect {
		r, err := t.SpendOPAuthCodeOfApp(ctx, tenantID, codeHash, at, clientID, appID, appUpdated)
		if err != nil {
			return nil, nil, err
		}
		u, err := t.GetUserWithoutGroups(ctx, tenantID, r.UserID)
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return r, nil, nil
		}
		return r, u, err
	}
	if len(codeHash) == 0 || clientID == "" {
		return nil, nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", opAuthRequestNotFound)
	}
	return withLiveUser(ctx, t, opAuthRequestNotFound, scanOPAuthRequest, spendCodeOfAppWithUserQuery,
		tenantID, codeHash, ts(normTime(at)), clientID, ts(appUpdated), appID)
}

// SpendOPRefreshToken spends, in one statement, the live refresh token
// hash of client (unused, unrevoked, unexpired at at) and returns it
// (UPDATE ... RETURNING). Otherwise it returns the token as it is, with
// ECONFLICT, for the caller to tell why (GetOPRefreshToken's read), or
// ENOTFOUND: of two concurrent uses exactly one spends the token.
func (t *tx) SpendOPRefreshToken(ctx context.Context, tenantID string, hash []byte, clientID string, at time.Time) (*gatehouse.OPRefreshToken, error) {
	rt, err := one(ctx, t, opRefreshTokenNotFound, scanOPRefreshToken,
		`UPDATE op_refresh_tokens SET used_at = $4 WHERE tenant_id = $1 AND hash = $2 AND client_id = $3
		 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $4 RETURNING `+opRefreshColumns,
		tenantID, hash, clientID, ts(normTime(at)))
	if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return rt, err
	}
	if rt, err = t.GetOPRefreshToken(ctx, tenantID, hash); err != nil {
		return nil, err
	}
	return rt, gatehouse.Errorf(gatehouse.ECONFLICT, "The refresh token is not live.")
}

// readRefreshGrantQuery is ReadRefreshGrant's statement, built once
// (prefixed splits and joins the column lists).
var readRefreshGrantQuery = perEngine(func(d *dialect) string {
	return `SELECT ` + prefixed("a.", appColumns) + `, ` + prefixed("r.", opRefreshColumns) + `, ` + liveUserColumns + `
	FROM apps a
	JOIN op_refresh_tokens r ON r.tenant_id = a.tenant_id AND r.hash = $3
	` + liveUserJoin(d, "r") + `
	WHERE a.tenant_id = $1 AND a.client_id = $2`
})

// ReadRefreshGrant reads, in one statement, what a refresh grant checks
// before it spends the token: the app of clientID, the refresh token of
// hash (of any client: the caller refuses another client's) and its user
// if live (nil when deleted or gone; Groups not filled). Nothing is
// changed: the caller authenticates the client, checks the token and
// spends it with UseOPRefreshToken, whose condition settles a concurrent
// use. ENOTFOUND when the app or the token is missing (the caller then
// tells which the slow way). It stands for GetAppByClientID, the spend's
// read and GetUserWithoutGroups: three statements of every refresh.
func (t *tx) ReadRefreshGrant(ctx context.Context, tenantID, clientID string, hash []byte) (*gatehouse.App, *gatehouse.OPRefreshToken, *gatehouse.User, error) {
	var app *gatehouse.App
	var rt *gatehouse.OPRefreshToken
	var u *gatehouse.User
	err := t.get(ctx, opRefreshTokenNotFound, func(sc scanner) error {
		var err error
		app, rt, err = scanBoth(sc, scanApp, func(sc scanner) (*gatehouse.OPRefreshToken, error) {
			var rt *gatehouse.OPRefreshToken
			var err error
			rt, u, err = scanBoth(sc, scanOPRefreshToken, scanUser)
			return rt, err
		})
		return err
	}, readRefreshGrantQuery[t.s.d], tenantID, clientID, hash)
	if err != nil {
		return nil, nil, nil, err
	}
	if u.ID == "" {
		u = nil
	}
	return app, rt, u, nil
}

// readRefreshOfAppQuery is ReadRefreshGrantOfApp's statement, built once.
var readRefreshOfAppQuery = perEngine(func(d *dialect) string {
	return `SELECT ` + prefixed("r.", opRefreshColumns) + `, ` + liveUserColumns + `
	FROM op_refresh_tokens r
	` + liveUserJoin(d, "r") + `
	WHERE r.tenant_id = $1 AND r.hash = $2
	AND EXISTS (SELECT 1 FROM apps WHERE tenant_id = $1 AND client_id = $3 AND id = $4 AND updated_at = $5)`
})

// ReadRefreshGrantOfApp is ReadRefreshGrant for a client whose app the
// caller read before its transaction (op's cache of apps): the refresh
// token of hash (of any client) and its live user (nil when gone; Groups
// not filled), read only while that app is as read (the same row, appID,
// last updated at appUpdated), so the caller's check of the client's
// secret against it holds for the app as stored. ENOTFOUND, without saying
// why, when the token is missing or the app changed or is gone: the caller
// then reads the app in its transaction (ReadRefreshGrant). It spares the
// app's columns (a quarter of ReadRefreshGrant's row, with JSON to decode).
func (t *tx) ReadRefreshGrantOfApp(ctx context.Context, tenantID, clientID, appID string, appUpdated time.Time, hash []byte) (*gatehouse.OPRefreshToken, *gatehouse.User, error) {
	return withLiveUser(ctx, t, opRefreshTokenNotFound, scanOPRefreshToken, readRefreshOfAppQuery[t.s.d],
		tenantID, hash, clientID, appID, ts(appUpdated))
}

var _ interface {
	ReadRefreshGrantOfApp(ctx context.Context, tenantID, clientID, appID string, appUpdated time.Time, hash []byte) (*gatehouse.OPRefreshToken, *gatehouse.User, error)
	GetUserWithoutGroups(ctx context.Context, tenantID, id string) (*gatehouse.User, error)
	SpendOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*gatehouse.OPAuthRequest, error)
	SpendOPRefreshToken(ctx context.Context, tenantID string, hash []byte, clientID string, at time.Time) (*gatehouse.OPRefreshToken, error)
	ListOPUserSessionClients(ctx context.Context, tenantID, userID, sessionID string) ([]string, error)
	ReadRefreshGrant(ctx context.Context, tenantID, clientID string, hash []byte) (*gatehouse.App, *gatehouse.OPRefreshToken, *gatehouse.User, error)
} = (*tx)(nil)
