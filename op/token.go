package op

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// The token endpoint's authorization_code and refresh_token grants are
// served here rather than by zitadel (which keeps client_credentials and
// every other endpoint). Through zitadel's Storage interface a grant took
// three transactions (the tenant, the code or refresh token, the new
// tokens), read the app twice, and built a JOSE signer and marshalled the
// ID token's claims three times per token; here a grant is one write
// transaction that reads the code or refresh token, the app and the user
// and writes the tokens, and the ID token is signed by the key's cached
// signer (jws.go). The rules are those zitadel applied, plus what
// storage.go added (single-use codes whose reuse revokes the grant,
// refresh token rotation with reuse detection, the user checked at every
// grant), and the errors are zitadel's: OAuth's JSON (RFC 6749 section
// 5.2) written by zop.RequestError.

// tokenParams are the token request's parameters (RFC 6749 sections
// 4.1.3 and 6) and the client's credentials (section 2.3.1).
type tokenParams struct {
	grantType, code, redirectURI, verifier, refreshToken string
	scope                                                []string
	clientID, clientSecret                               string
}

// singleParams are the parameters read from a token request; each may
// appear once (RFC 6749 section 3.2).
var singleParams = []string{"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "client_id", "client_secret"}

// parseTokenRequest reads the form body (route has parsed it) and the
// client's credentials. Parameters are read from the body only: RFC 6749
// section 4.1.3 and 6 send them in the entity-body, and section 2.3.1 forbids
// credentials in the request URI.
func parseTokenRequest(r *http.Request) (*tokenParams, *oidc.Error) {
	f := r.PostForm
	for _, k := range singleParams {
		if len(f[k]) > 1 {
			return nil, oidc.ErrInvalidRequest().WithDescription("The parameter %s is repeated.", k)
		}
	}
	if f.Get("client_assertion") != "" || f.Get("client_assertion_type") != "" {
		// private_key_jwt is not offered (discovery lists the methods).
		return nil, oidc.ErrInvalidClient().WithDescription("auth_method private_key_jwt not supported")
	}
	tp := &tokenParams{
		grantType: f.Get("grant_type"), code: f.Get("code"), redirectURI: f.Get("redirect_uri"),
		verifier: f.Get("code_verifier"), refreshToken: f.Get("refresh_token"),
		scope:    strings.Fields(f.Get("scope")),
		clientID: f.Get("client_id"), clientSecret: f.Get("client_secret"),
	}
	if id, sec, ok := r.BasicAuth(); ok {
		// The client MUST NOT use more than one authentication method
		// (RFC 6749 section 2.3); a client_id in the body must name the
		// same client.
		if tp.clientSecret != "" {
			return nil, oidc.ErrInvalidRequest().WithDescription("client authentication must not use more than one method")
		}
		// Basic credentials are form-urlencoded first (section 2.3.1).
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		sec, err2 = url.QueryUnescape(sec)
		if err1 != nil || err2 != nil {
			return nil, oidc.ErrInvalidClient().WithDescription("invalid basic auth header")
		}
		if tp.clientID != "" && tp.clientID != id {
			return nil, oidc.ErrInvalidRequest().WithDescription("client_id does not match the authenticated client")
		}
		tp.clientID, tp.clientSecret = id, sec
	}
	return tp, nil
}

// errClientAuth is the answer to every failed client authentication: an
// unknown client and a wrong secret look the same (RFC 6749 section 5.2,
// invalid_client, 401 from zop.RequestError).
func errClientAuth() *oidc.Error {
	return oidc.ErrInvalidClient().WithDescription("invalid client_id / client_secret")
}

// authenticateClient reads the client's app in tx and checks its secret
// in constant time; a public client has none (PKCE stands in for it, RFC
// 7636). The app is read in the grant's own transaction, so a rotated
// secret or a deleted app fails at the next request on every replica.
func authenticateClient(ctx context.Context, tx gatehouse.Tx, tenantID string, tp *tokenParams) (*gatehouse.App, *oidc.Error, error) {
	if tp.clientID == "" {
		return nil, errClientAuth(), nil
	}
	app, err := tx.GetAppByClientID(ctx, tenantID, tp.clientID)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, errClientAuth(), nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !clientSecretOK(app, tp) {
		return nil, errClientAuth(), nil
	}
	return app, nil, nil
}

// clientSecretOK: the request carries app's secret (constant-time
// compare), or app is public and has none.
func clientSecretOK(app *gatehouse.App, tp *tokenParams) bool {
	return app.Public || (len(app.SecretHash) > 0 && secret.Matches(tp.clientSecret, app.SecretHash))
}

// verifyPKCE checks the code_verifier against the request's S256
// challenge (RFC 7636 section 4.6), in constant time. The authorize
// endpoint stored a challenge for every code (CreateAuthRequest).
func verifyPKCE(p authParams, verifier string) *oidc.Error {
	if p.CodeChallenge == "" || p.CodeChallengeMethod != string(oidc.CodeChallengeMethodS256) {
		// Never stored (CreateAuthRequest refuses it): fail closed.
		return oidc.ErrInvalidGrant().WithDescription("invalid code")
	}
	if verifier == "" {
		return oidc.ErrInvalidRequest().WithDescription("code_verifier required")
	}
	if !verifierFormat(verifier) {
		return oidc.ErrInvalidRequest().WithDescription("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
	}
	d := sha256.Sum256([]byte(verifier))
	var got [43]byte
	base64.RawURLEncoding.Encode(got[:], d[:])
	if subtle.ConstantTimeCompare(got[:], []byte(p.CodeChallenge)) != 1 {
		return oidc.ErrInvalidGrant().WithDescription("invalid code_verifier")
	}
	return nil
}

// verifierFormat: a code_verifier is 43 to 128 unreserved characters (RFC
// 7636 section 4.1). A client that made a shorter one weakened its own
// PKCE (the challenge in the authorize URL can be searched for it), so it
// is refused rather than verified, as fosite and node oidc-provider do.
func verifierFormat(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// grantResult is what a grant's transaction produced for the response.
type grantResult struct {
	app      *gatehouse.App
	user     *gatehouse.User
	access   *gatehouse.OPToken
	refresh  string // the new refresh token's value, if one was issued
	scopes   []string
	nonce    string
	authTime time.Time
	amr      []string
	sid      string
}

// errRollback undoes a grant's transaction whose refusal must leave no
// trace (a refresh token is spent only when new tokens are issued).
var errRollback = errors.New("op: grant refused")

// token serves POST /token for the authorization_code and refresh_token
// grants.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tp, oerr := parseTokenRequest(r)
	if oerr != nil {
		tokenError(w, r, oerr, p.log)
		return
	}
	var res *grantResult
	var err error
	switch tp.grantType {
	case grantCode:
		res, oerr, err = p.codeGrant(ctx, tp)
	case grantRefresh:
		res, oerr, err = p.refreshGrant(ctx, tp)
	default:
		oerr = oidc.ErrUnsupportedGrantType()
	}
	if err == nil && oerr == nil {
		var resp *oidc.AccessTokenResponse
		if resp, err = p.tokenResponse(ctx, res, tp); err == nil {
			writeJSON(w, http.StatusOK, resp)
			return
		}
	}
	if err != nil {
		p.log.ErrorContext(ctx, "op: token grant", "grant_type", tp.grantType, "err", err)
		oerr = oidc.ErrServerError().WithDescription("Internal error.")
	}
	tokenError(w, r, oerr, p.log)
}

// tokenError writes a token endpoint error (RFC 6749 section 5.2). A client
// that tried HTTP Basic authentication and failed gets the challenge of
// that scheme with its 401, which section 5.2 requires.
func tokenError(w http.ResponseWriter, r *http.Request, oerr *oidc.Error, log *slog.Logger) {
	if oerr.ErrorType == oidc.InvalidClient {
		if auth := r.Header.Get("Authorization"); len(auth) >= 6 && strings.EqualFold(auth[:6], "Basic ") {
			w.Header().Set("WWW-Authenticate", `Basic realm="token", charset="UTF-8"`)
		}
	}
	zop.RequestError(w, r, oerr, log)
}

// codeGrant redeems an authorization code (RFC 6749 section 4.1.3, OpenID
// Connect Core section 3.1.3.2). The client is authenticated first, then
// the code is spent, in the same transaction as everything else: a code is
// single use (RFC 6749 section 4.1.2) and a refused redemption by an
// authenticated client still spends it, as zitadel did; a second use
// revokes every token the first one issued, since one of the two users of
// the code is an attacker (RFC 6749 section 10.5).
func (p *Provider) codeGrant(ctx context.Context, tp *tokenParams) (res *grantResult, refusal *oidc.Error, err error) {
	if tp.code == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("code missing"), nil
	}
	st := stateFrom(ctx)
	now := p.clock.Now().UTC()
	err = p.store.Update(ctx, func(tx gatehouse.Tx) error {
		// fn may run again (PostgreSQL retries): start afresh.
		res, refusal = nil, nil
		// The client before the code (RFC 6749 section 4.1.3: "require
		// client authentication for confidential clients"), as zitadel
		// did: a caller without the client's secret spends nothing and
		// revokes nothing, so whoever holds a leaked code can neither burn
		// it before the app redeems it nor, after, revoke the app's tokens
		// by replaying it.
		codeHash := secret.Digest(tp.code)
		app, row, spentUser, err := p.spendCodeOfCachedApp(ctx, tx, st.tenant.ID, tp, codeHash, now)
		if err != nil {
			return err
		}
		// The user was read with the spend (nil when gone) only on
		// this path.
		userRead := row != nil
		if row == nil {
			var refused *oidc.Error
			app, refused, err = authenticateClient(ctx, tx, st.tenant.ID, tp)
			if refusal = refused; err != nil || refusal != nil {
				return err
			}
			row, err = spendCode(ctx, tx, st.tenant.ID, codeHash, now)
		}
		switch {
		case gatehouse.IsCode(err, gatehouse.ENOTFOUND):
			refusal = oidc.ErrInvalidGrant().WithDescription("invalid code")
			return nil
		case gatehouse.IsCode(err, gatehouse.ECONFLICT) && row != nil:
			n, err := tx.RevokeOPTokens(ctx, row.TenantID, grantFilter(row.ID, row.UserID), now)
			if err != nil {
				return err
			}
			refusal = oidc.ErrInvalidGrant().WithDescription("invalid code")
			return audit(ctx, tx, now, "oidc.code_reused", "app", row.ClientID,
				map[string]any{"grant": row.ID, "user_id": row.UserID, "revoked": n})
		case err != nil:
			return err
		}
		if !now.Before(row.ExpiresAt) || !row.Done {
			refusal = oidc.ErrInvalidGrant().WithDescription("invalid code")
			return nil
		}
		ar, err := loadAuthRequest(row)
		if err != nil {
			return err
		}
		if refusal = verifyPKCE(ar.p, tp.verifier); refusal != nil {
			return nil
		}
		c := &client{app: app, issuer: st.issuer, p: p}
		switch {
		case app.ClientID != row.ClientID:
			// The code was issued to another client (RFC 6749 section 4.1.3).
			refusal = oidc.ErrInvalidGrant()
		case !c.hasGrant(grantCode):
			refusal = oidc.ErrUnauthorizedClient().WithDescription("client missing grant type " + grantCode)
		case tp.redirectURI != ar.p.RedirectURI:
			// Identical to the authorize request's (RFC 6749 section 4.1.3).
			refusal = oidc.ErrInvalidGrant().WithDescription("redirect_uri does not correspond")
		}
		if refusal != nil {
			return nil
		}
		needGroups := slices.Contains(ar.p.Scopes, scopeGroups)
		var u *gatehouse.User
		if userRead {
			u, err = checkLoadedUser(ctx, tx, app, row.UserID, needGroups, spentUser)
		} else {
			u, err = checkUser(ctx, tx, app, row.UserID, needGroups)
		}
		if err != nil {
			return refuse(err, &refusal)
		}
		r := &grantResult{app: app, user: u, scopes: ar.p.Scopes, nonce: ar.p.Nonce, authTime: row.AuthTime, sid: row.SessionID}
		// A refresh token only for offline_access, to a client allowed
		// the grant (OpenID Connect Core section 11).
		var rt *gatehouse.OPRefreshToken
		if slices.Contains(r.scopes, oidc.ScopeOfflineAccess) && ar.p.ResponseType == string(oidc.ResponseTypeCode) && c.hasGrant(grantRefresh) {
			rt = &gatehouse.OPRefreshToken{AuthTime: row.AuthTime}
		}
		if r.access, r.refresh, err = p.writeTokens(ctx, tx, c, rt, row.UserID, row.ID, row.SessionID, r.scopes, r.scopes, now); err != nil {
			return err
		}
		res = r
		return nil
	})
	return res, refusal, err
}

// cachedAppCodeSpender is the store's spend of a code that also checks
// that the client's app is as cached, and reads the code's user without
// groups (sqlstore SpendOPAuthCodeOfAppWithUser).
type cachedAppCodeSpender interface {
	SpendOPAuthCodeOfAppWithUser(ctx context.Context, tenantID string, codeHash []byte, at time.Time, clientID, appID string, appUpdated time.Time) (*gatehouse.OPAuthRequest, *gatehouse.User, error)
}

// spendCodeOfCachedApp is the code grant's first two steps, authenticate
// the client and spend the code, in one statement, when the replica holds
// the client's app (knownAppAge: the authorize endpoint or the login cached
// it) and the request carries its secret: the statement
// spends the code only while the app is as cached, so the secret was
// checked against the app as stored. It returns (nil, nil, nil), having
// written nothing, whenever it cannot tell: the caller then takes the
// path that reads the app in the transaction and tells a wrong secret, a
// changed app, an unknown code and a reused one apart. With the request
// it returns the request's user without groups, nil when gone.
func (p *Provider) spendCodeOfCachedApp(ctx context.Context, tx gatehouse.Tx, tenantID string, tp *tokenParams, codeHash []byte, now time.Time) (*gatehouse.App, *gatehouse.OPAuthRequest, *gatehouse.User, error) {
	s, ok := tx.(cachedAppCodeSpender)
	if !ok || tp.clientID == "" {
		return nil, nil, nil, nil
	}
	app, ok := p.apps.peekAged(appKey{tenantID, tp.clientID}, knownAppAge)
	if !ok || !clientSecretOK(app, tp) {
		return nil, nil, nil, nil
	}
	row, u, err := s.SpendOPAuthCodeOfAppWithUser(ctx, tenantID, codeHash, now, app.ClientID, app.ID, app.UpdatedAt)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return app, row, u, nil
}

// codeSpender is the store's one-statement UseOPAuthCode
// (sqlstore SpendOPAuthCode).
type codeSpender interface {
	SpendOPAuthCode(ctx context.Context, tenantID string, codeHash []byte, at time.Time) (*gatehouse.OPAuthRequest, error)
}

// spendCode marks a code used and returns its request; ECONFLICT (with
// the request) when it was used before, ENOTFOUND when there is none.
func spendCode(ctx context.Context, tx gatehouse.Tx, tenantID string, codeHash []byte, now time.Time) (*gatehouse.OPAuthRequest, error) {
	if s, ok := tx.(codeSpender); ok {
		return s.SpendOPAuthCode(ctx, tenantID, codeHash, now)
	}
	return tx.UseOPAuthCode(ctx, tenantID, codeHash, now)
}

// refreshSpender is the store's one-statement spend of a refresh token
// (sqlstore SpendOPRefreshToken).
type refreshSpender interface {
	SpendOPRefreshToken(ctx context.Context, tenantID string, hash []byte, clientID string, at time.Time) (*gatehouse.OPRefreshToken, error)
}

// spendRefresh marks the live refresh token hash of clientID used and
// returns it; ECONFLICT with the token when it is not live (revoked,
// expired, used, or another client's), ENOTFOUND when there is none.
func spendRefresh(ctx context.Context, tx gatehouse.Tx, tenantID string, hash []byte, clientID string, now time.Time) (*gatehouse.OPRefreshToken, error) {
	if s, ok := tx.(refreshSpender); ok {
		return s.SpendOPRefreshToken(ctx, tenantID, hash, clientID, now)
	}
	tok, err := tx.GetOPRefreshToken(ctx, tenantID, hash)
	if err != nil {
		return nil, err
	}
	return spendLoaded(ctx, tx, tok, clientID, now)
}

// spendLoaded spends tok, read in this transaction, as spendRefresh does:
// ECONFLICT with tok when it is not live or is another client's.
func spendLoaded(ctx context.Context, tx gatehouse.Tx, tok *gatehouse.OPRefreshToken, clientID string, now time.Time) (*gatehouse.OPRefreshToken, error) {
	if tok.RevokedAt != nil || tok.UsedAt != nil || !now.Before(tok.ExpiresAt) || tok.ClientID != clientID {
		return tok, gatehouse.Errorf(gatehouse.ECONFLICT, "The refresh token is not live.")
	}
	// Of two concurrent uses of one token exactly one spends it (the
	// statement's condition); the other is a replay.
	if err := tx.UseOPRefreshToken(ctx, tok.TenantID, tok.ID, now); gatehouse.IsCode(err, gatehouse.ECONFLICT) {
		tok.UsedAt = &now
		return tok, err
	} else if err != nil {
		return nil, err
	}
	return tok, nil
}

// refreshReader is the store's one-statement read of a refresh grant's
// app, token and user (sqlstore ReadRefreshGrant).
type refreshReader interface {
	ReadRefreshGrant(ctx context.Context, tenantID, clientID string, hash []byte) (*gatehouse.App, *gatehouse.OPRefreshToken, *gatehouse.User, error)
}

// cachedAppRefreshReader reads a refresh grant's token and user only while
// the client's app is as cached (sqlstore ReadRefreshGrantOfApp).
type cachedAppRefreshReader interface {
	ReadRefreshGrantOfApp(ctx context.Context, tenantID, clientID, appID string, appUpdated time.Time, hash []byte) (*gatehouse.OPRefreshToken, *gatehouse.User, error)
}

// refreshRead is what a refresh grant read before spending its token.
type refreshRead struct {
	app *gatehouse.App
	tok *gatehouse.OPRefreshToken
	// user is tok's user without its groups, nil when gone.
	user *gatehouse.User
}

// readRefresh reads the app, the token and its user in one statement when
// the store can; nil when it cannot, or when the app or the token is
// missing (the caller then takes the path that tells which). When the
// replica knows the client's app (knownAppAge) and the request carries its
// secret, the statement reads only the token and the user, while the app
// is as known; otherwise it reads the app too, and the replica keeps it
// for the next grants of that client.
func (p *Provider) readRefresh(ctx context.Context, tx gatehouse.Tx, tenantID string, tp *tokenParams, hash []byte) (*refreshRead, error) {
	if tp.clientID == "" {
		return nil, nil
	}
	key := appKey{tenantID, tp.clientID}
	if rr, ok := tx.(cachedAppRefreshReader); ok {
		if app, ok := p.apps.peekAged(key, knownAppAge); ok && clientSecretOK(app, tp) {
			tok, u, err := rr.ReadRefreshGrantOfApp(ctx, tenantID, app.ClientID, app.ID, app.UpdatedAt, hash)
			if err == nil {
				return &refreshRead{app: app, tok: tok, user: u}, nil
			}
			if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				return nil, err
			}
		}
	}
	rr, ok := tx.(refreshReader)
	if !ok {
		return nil, nil
	}
	app, tok, u, err := rr.ReadRefreshGrant(ctx, tenantID, tp.clientID, hash)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.apps.keepAged(key, app, knownAppAge, sameAppVersion)
	return &refreshRead{app: app, tok: tok, user: u}, nil
}

// sameAppVersion: a and b are the same row as of the same write, as the
// version-checked statements compare them.
func sameAppVersion(a, b *gatehouse.App) bool {
	return a.ID == b.ID && a.UpdatedAt.Equal(b.UpdatedAt)
}

// refuse turns checkUser's refusal (an *oidc.Error) into the grant's
// refusal and keeps other errors.
func refuse(err error, refusal **oidc.Error) error {
	var oe *oidc.Error
	if errors.As(err, &oe) {
		*refusal = oe
		return nil
	}
	return err
}

// refreshGrant redeems a refresh token (RFC 6749 section 6) and rotates it
// (RFC 9700 section 4.14.2): the token is spent and a new one issued in one
// transaction. A token presented again after it was spent is a replay:
// the app or an attacker holds a copy, and the provider cannot tell which,
// so the whole grant (the family of rotated tokens and their access
// tokens) is revoked (RFC 6749 section 10.4).
func (p *Provider) refreshGrant(ctx context.Context, tp *tokenParams) (res *grantResult, refusal *oidc.Error, err error) {
	if tp.refreshToken == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("refresh_token missing"), nil
	}
	st := stateFrom(ctx)
	now := p.clock.Now().UTC()
	err = p.store.Update(ctx, func(tx gatehouse.Tx) error {
		res, refusal = nil, nil
		hash := secret.Digest(tp.refreshToken)
		// The app, the token and its user in one read where the store
		// can; nothing is spent before the client is authenticated.
		pre, err := p.readRefresh(ctx, tx, st.tenant.ID, tp, hash)
		if err != nil {
			return err
		}
		// The client first: an unauthenticated request learns nothing of
		// the token and spends nothing.
		var app *gatehouse.App
		if pre != nil {
			if app = pre.app; !clientSecretOK(app, tp) {
				refusal = errClientAuth()
				return nil
			}
		} else {
			var refused *oidc.Error
			app, refused, err = authenticateClient(ctx, tx, st.tenant.ID, tp)
			if refusal = refused; err != nil || refusal != nil {
				return err
			}
		}
		c := &client{app: app, issuer: st.issuer, p: p}
		if !c.hasGrant(grantRefresh) {
			refusal = oidc.ErrUnauthorizedClient()
			return nil
		}
		// Spent at once if live; else tok says why not.
		var tok *gatehouse.OPRefreshToken
		if pre != nil {
			tok, err = spendLoaded(ctx, tx, pre.tok, app.ClientID, now)
		} else {
			tok, err = spendRefresh(ctx, tx, st.tenant.ID, hash, app.ClientID, now)
		}
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			refusal = oidc.ErrInvalidGrant()
			return nil
		}
		if gatehouse.IsCode(err, gatehouse.ECONFLICT) {
			switch {
			case tok.RevokedAt != nil, !now.Before(tok.ExpiresAt) && tok.UsedAt == nil:
				refusal = oidc.ErrInvalidGrant()
				return nil
			case tok.UsedAt != nil:
				// Spent before, or by a concurrent use just now.
				refusal = oidc.ErrInvalidGrant().WithDescription("The refresh token was already used.")
				return p.storage.revokeReused(ctx, tx, tok, now)
			default:
				// Another client's token (RFC 6749 section 6): not spent.
				refusal = oidc.ErrInvalidGrant()
				return nil
			}
		}
		if err != nil {
			return err
		}
		// A narrower scope may be asked for, never a wider one (RFC 6749
		// section 6); the new refresh token keeps the grant's scopes.
		scopes := tok.Scopes
		if len(tp.scope) > 0 {
			for _, s := range tp.scope {
				if !slices.Contains(tok.Scopes, s) {
					// The token stays unspent.
					refusal = oidc.ErrInvalidScope()
					return errRollback
				}
			}
			scopes = tp.scope
		}
		var u *gatehouse.User
		if pre != nil {
			u, err = checkLoadedUser(ctx, tx, app, tok.UserID, slices.Contains(scopes, scopeGroups), pre.user)
		} else {
			u, err = checkUser(ctx, tx, app, tok.UserID, slices.Contains(scopes, scopeGroups))
		}
		if err != nil {
			if err = refuse(err, &refusal); err == nil {
				// The token stays unspent: the user may be reactivated.
				return errRollback
			}
			return err
		}
		r := &grantResult{app: app, user: u, scopes: scopes, authTime: tok.AuthTime, amr: tok.AMR, sid: tok.SessionID}
		rt := &gatehouse.OPRefreshToken{AMR: tok.AMR, AuthTime: tok.AuthTime, RotatedFrom: tok.ID}
		if r.access, r.refresh, err = p.writeTokens(ctx, tx, c, rt, tok.UserID, tok.GrantID, tok.SessionID, scopes, tok.Scopes, now); err != nil {
			return err
		}
		res = r
		return nil
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	return res, refusal, err
}

// Id prefixes of access and refresh tokens.
const (
	accessPrefix    = "oat"
	refreshIDPrefix = "ort"
)

// tokenID is the id of a token that expires at exp: ids sort by expiry,
// so the store sweeps expired tokens by a range of the primary key
// (gatehouse.NewIDAt, sqlstore purgeOPTokens).
func tokenID(prefix string, exp time.Time) string { return gatehouse.NewIDAt(prefix, exp) }

// grantFilter selects the tokens of grant, a grant of userID: with the
// user the store reads that user's tokens only (sqlstore has one index,
// by tenant, user and session, on its token tables).
func grantFilter(grantID, userID string) gatehouse.OPTokenFilter {
	return gatehouse.OPTokenFilter{GrantID: grantID, UserID: userID}
}

// writeTokens stores the grant's access token of scopes and, when rt is
// not nil, a new refresh token of the grant of refreshScopes (rt carries
// its AMR, auth time and predecessor), and returns the refresh token's
// value. An access token of the refresh token's scopes is kept in the
// refresh token's row (gatehouse.PairedAccessID): one INSERT instead of
// two. A narrower access token (a refresh grant's scope parameter, RFC
// 6749 section 6), or one that outlives the refresh token (whose row is
// swept a day after the refresh token expires), keeps a row of its own.
func (p *Provider) writeTokens(ctx context.Context, tx gatehouse.Tx, c *client, rt *gatehouse.OPRefreshToken, userID, grantID, sessionID string, scopes, refreshScopes []string, now time.Time) (*gatehouse.OPToken, string, error) {
	exp := now.Add(c.accessTTL())
	tk := &gatehouse.OPToken{
		ID: tokenID(accessPrefix, exp), TenantID: c.app.TenantID, ClientID: c.app.ClientID, UserID: userID,
		GrantID: grantID, SessionID: sessionID, Scopes: scopes,
		CreatedAt: now, ExpiresAt: exp,
	}
	paired := rt != nil && slices.Equal(scopes, refreshScopes) && c.accessTTL() <= c.refreshTTL()
	if !paired {
		if err := tx.CreateOPToken(ctx, tk); err != nil {
			return nil, "", err
		}
	}
	if rt == nil {
		return tk, "", nil
	}
	if paired {
		rt.AccessExpiresAt = exp
	}
	value, err := p.writeRefreshToken(ctx, tx, c, rt, userID, grantID, sessionID, refreshScopes, now)
	if err != nil {
		return nil, "", err
	}
	if paired {
		tk.ID, tk.ExpiresAt = gatehouse.PairedAccessID(rt.ID), rt.AccessExpiresAt
	}
	return tk, value, nil
}

// writeRefreshToken stores a new refresh token of the grant (rt carries
// its AMR, auth time and predecessor) and returns its value; only its
// digest is stored.
func (p *Provider) writeRefreshToken(ctx context.Context, tx gatehouse.Tx, c *client, rt *gatehouse.OPRefreshToken, userID, grantID, sessionID string, scopes []string, now time.Time) (string, error) {
	value := secret.NewToken(refreshPrefix)
	rt.CreatedAt, rt.ExpiresAt = now, now.Add(c.refreshTTL())
	rt.ID, rt.TenantID, rt.Hash, rt.ClientID = tokenID(refreshIDPrefix, rt.ExpiresAt), c.app.TenantID, secret.Digest(value), c.app.ClientID
	rt.UserID, rt.GrantID, rt.SessionID, rt.Scopes = userID, grantID, sessionID, scopes
	return value, tx.CreateOPRefreshToken(ctx, rt)
}

// tokenResponse is the successful answer (RFC 6749 section 5.1, OpenID
// Connect Core section 3.1.3.3): the opaque access token (its id and
// subject encrypted as zitadel's Crypto does, which its userinfo and
// introspection endpoints decrypt), the new refresh token, and the ID token.
func (p *Provider) tokenResponse(ctx context.Context, res *grantResult, tp *tokenParams) (*oidc.AccessTokenResponse, error) {
	access, err := p.sealer.seal(res.access.ID + ":" + res.access.UserID)
	if err != nil {
		return nil, err
	}
	idToken, err := p.idToken(ctx, res, access, tp.code)
	if err != nil {
		return nil, err
	}
	return &oidc.AccessTokenResponse{
		AccessToken: access, TokenType: oidc.BearerToken, RefreshToken: res.refresh,
		ExpiresIn: uint64(res.access.ExpiresAt.Sub(p.clock.Now()).Seconds()),
		IDToken:   idToken, Scope: res.scopes,
	}, nil
}

// idClaims are the claims of an ID token (OpenID Connect Core section 2
// and 5.1), as zitadel's IDTokenClaims wrote them for this provider
// (TestIDTokenClaimsMatchZitadel compares the two).
type idClaims struct {
	Issuer            string   `json:"iss"`
	Subject           string   `json:"sub"`
	Audience          []string `json:"aud"`
	Expiration        int64    `json:"exp"`
	IssuedAt          int64    `json:"iat"`
	AuthTime          int64    `json:"auth_time,omitempty"`
	Nonce             string   `json:"nonce,omitempty"`
	AMR               []string `json:"amr,omitempty"`
	AuthorizedParty   string   `json:"azp"`
	ClientID          string   `json:"client_id"`
	AccessTokenHash   string   `json:"at_hash,omitempty"`
	CodeHash          string   `json:"c_hash,omitempty"`
	SessionID         string   `json:"sid,omitempty"`
	Name              string   `json:"name,omitempty"`
	GivenName         string   `json:"given_name,omitempty"`
	FamilyName        string   `json:"family_name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     bool     `json:"email_verified,omitempty"`
	// Groups is present (possibly []) whenever the groups scope is.
	Groups []string `json:"groups,omitzero"`
}

// newIDClaims fills the ID token's claims of a grant: the user's claims
// for the scopes as at userinfo (userClaims, the ID token carries them
// too: client.IDTokenUserinfoClaimsAssertion), at_hash and c_hash
// (OpenID Connect Core section 3.3.2.11) with the hash of alg.
func newIDClaims(issuer string, res *grantResult, now time.Time, ttl time.Duration, alg, accessToken, code string) (*idClaims, error) {
	clientID := res.app.ClientID
	c := &idClaims{
		Issuer: issuer, Subject: res.user.ID, Audience: []string{clientID},
		Expiration: now.Add(ttl).Unix(), IssuedAt: now.Unix(), Nonce: res.nonce,
		AMR: res.amr, AuthorizedParty: clientID, ClientID: clientID,
	}
	if !res.authTime.IsZero() {
		c.AuthTime = res.authTime.Unix()
	}
	var err error
	if accessToken != "" {
		if c.AccessTokenHash, err = oidc.ClaimHash(accessToken, jose.SignatureAlgorithm(alg)); err != nil {
			return nil, err
		}
	}
	if code != "" {
		if c.CodeHash, err = oidc.ClaimHash(code, jose.SignatureAlgorithm(alg)); err != nil {
			return nil, err
		}
	}
	if len(res.scopes) > 0 {
		var info oidc.UserInfo
		userClaims(&info, res.user, res.scopes)
		c.Subject = info.Subject
		c.Name, c.GivenName, c.FamilyName = info.Name, info.GivenName, info.FamilyName
		c.PreferredUsername, c.Email, c.EmailVerified = info.PreferredUsername, info.Email, bool(info.EmailVerified)
		if g, ok := info.Claims["groups"].([]string); ok {
			c.Groups = g
		}
		c.SessionID = res.sid
	}
	return c, nil
}

// idToken signs the grant's ID token with the tenant's key of the app's
// algorithm.
func (p *Provider) idToken(ctx context.Context, res *grantResult, accessToken, code string) (string, error) {
	alg := normalizeAlg(res.app.IDTokenSigningAlg)
	k, err := p.keys.signingKey(ctx, res.app.TenantID, alg)
	if err != nil {
		return "", err
	}
	claims, err := newIDClaims(stateFrom(ctx).issuer, res, p.clock.Now(), p.cfg.IDTokenTTL, k.jws.alg, accessToken, code)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return k.jws.sign(payload)
}

// writeJSON writes v as the JSON body of a response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
