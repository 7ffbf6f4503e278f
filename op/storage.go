package op

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// storage is zitadel's op.Storage over gatehouse.Store, for the tenant of
// the request (reqState). Errors returned to zitadel are *oidc.Error where
// the OAuth error code matters; plain errors become invalid_grant or
// invalid_client where zitadel wraps them, and server_error elsewhere.
type storage struct{ p *Provider }

var (
	_ zop.Storage                   = (*storage)(nil)
	_ zop.ClientCredentialsStorage  = (*storage)(nil)
	_ zop.CanSetUserinfoFromRequest = (*storage)(nil)
)

// refreshPrefix marks refresh tokens for secret scanners and humans.
const refreshPrefix = "gh_rt_"

// grantRef is how GetRefreshTokenInfo names a refresh token's grant to
// RevokeToken (RFC 7009 section 2.1: revoking a refresh token revokes the
// access tokens of the same grant too).
const grantRef = "grant/"

var errNotFound = errors.New("not found")

func (s *storage) now() time.Time { return s.p.clock.Now().UTC() }

func tenantOf(ctx context.Context) string { return stateFrom(ctx).tenant.ID }

// audit appends a security event of the tenant in tx.
func audit(ctx context.Context, tx gatehouse.Tx, now time.Time, action, targetType, targetID string, details map[string]any) error {
	return tx.AppendAudit(ctx, &gatehouse.AuditEvent{
		ID: gatehouse.NewID("aud"), TenantID: tenantOf(ctx), Time: now, ActorType: "system", ActorID: "op",
		Action: action, TargetType: targetType, TargetID: targetID, Details: details,
	})
}

// --- clients -------------------------------------------------------------

// loadClient returns the app of clientID for this request. zitadel asks
// for the client two or three times per request (GetClientByClientID,
// then AuthorizeClientIDSecret; AuthResponse again at resume): the app is
// read once per request and kept in the request state. The authorize
// endpoint takes it from the replica's cache (apps.go: at most appTTL old,
// and never older than this process's last write of an app); every other
// request reads it from the store, so a rotated secret, a changed app or a
// deleted app takes effect there at the next request on every replica.
// The secret is still checked on every authenticate call.
func (s *storage) loadClient(ctx context.Context, clientID string) (*client, error) {
	st := stateFrom(ctx)
	if c := st.client; c != nil && c.app.ClientID == clientID && c.app.TenantID == st.tenant.ID {
		return c, nil
	}
	read := func(ctx context.Context) (*gatehouse.App, error) { return s.readApp(ctx, st.tenant.ID, clientID) }
	var app *gatehouse.App
	var hit bool
	var err error
	if st.authorize {
		app, hit, err = s.p.apps.get(ctx, appKey{st.tenant.ID, clientID}, read)
	} else {
		app, err = read(ctx)
	}
	if err != nil {
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return nil, errors.New("unknown client")
		}
		return nil, oidc.ErrServerError().WithParent(err)
	}
	c := s.keepClient(ctx, app)
	c.cached = hit
	return c, nil
}

// authRequestLookup is the store's read of an authorize request outside
// a transaction (sqlstore LookupOPAuthRequest).
type authRequestLookup interface {
	LookupOPAuthRequest(ctx context.Context, tenantID, id string) (*gatehouse.OPAuthRequest, error)
}

// keepClient makes app the request's client: it decides the ID token's
// algorithm, and later lookups of the same client id in this request use it.
func (s *storage) keepClient(ctx context.Context, app *gatehouse.App) *client {
	st := stateFrom(ctx)
	c := &client{app: app, issuer: st.issuer, p: s.p}
	st.client = c
	return c
}

// preloadClient reads, in a transaction the request opens anyway, the app
// the request is about (the code's or the refresh token's client), so the
// client lookup that follows needs no transaction of its own. A missing
// app is left to loadClient, which refuses it.
func (s *storage) preloadClient(ctx context.Context, tx gatehouse.Tx, clientID string) error {
	st := stateFrom(ctx)
	if c := st.client; c != nil && c.app.ClientID == clientID {
		return nil
	}
	app, err := tx.GetAppByClientID(ctx, st.tenant.ID, clientID)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil
	}
	if err != nil {
		return err
	}
	s.keepClient(ctx, app)
	return nil
}

func (s *storage) GetClientByClientID(ctx context.Context, clientID string) (zop.Client, error) {
	c, err := s.loadClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// authenticate checks a confidential client's secret against its digest
// in constant time.
func (s *storage) authenticate(ctx context.Context, clientID, clientSecret string) (*client, error) {
	c, err := s.loadClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	if c.app.Public || len(c.app.SecretHash) == 0 || !secret.Matches(clientSecret, c.app.SecretHash) {
		return nil, errors.New("client authentication failed")
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(ctx context.Context, clientID, clientSecret string) error {
	_, err := s.authenticate(ctx, clientID, clientSecret)
	return err
}

func (s *storage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (zop.Client, error) {
	c, err := s.authenticate(ctx, clientID, clientSecret)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ClientCredentialsTokenRequest: a client acting for itself has no user,
// so the user scopes mean nothing and are dropped (unknown scopes are
// ignored, not refused).
func (s *storage) ClientCredentialsTokenRequest(ctx context.Context, clientID string, scopes []string) (zop.TokenRequest, error) {
	return &clientCredentialsRequest{clientID: clientID, scopes: []string{}}, nil
}

// --- authorize requests and codes ----------------------------------------

// CreateAuthRequest stores a validated authorize request. zitadel has
// checked the client, the exact redirect URI, the response type and the
// scopes; here are Gatehouse's stricter rules: PKCE with S256 only (plain
// offers no protection against a stolen code, RFC 7636 section 7.2), and
// PKCE is mandatory for every client: RFC 9700 section 2.1.1 requires it of
// public clients and recommends it for confidential ones, where it also
// stops authorization code injection.
func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (zop.AuthRequest, error) {
	st := stateFrom(ctx)
	c, err := s.loadClient(ctx, req.ClientID)
	if err != nil {
		return nil, err
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256.")
	}
	if req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE (code_challenge with S256) is required.")
	}
	if !c.hasGrant(grantCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("This client may not use the authorization code flow.")
	}
	params := authParams{
		RedirectURI: req.RedirectURI, Scopes: req.Scopes, ResponseType: string(req.ResponseType),
		ResponseMode: string(req.ResponseMode), State: req.State, Nonce: req.Nonce, Prompt: req.Prompt,
		MaxAge: req.MaxAge, LoginHint: req.LoginHint, CodeChallenge: req.CodeChallenge,
		CodeChallengeMethod: string(req.CodeChallengeMethod), HintSubject: hintSubject,
	}
	body, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	now := s.now()
	row := &gatehouse.OPAuthRequest{
		ID: gatehouse.NewID("oar"), TenantID: st.tenant.ID, ClientID: req.ClientID, Request: body,
		CreatedAt: now, ExpiresAt: now.Add(authRequestTTL),
	}
	ar := &authRequest{row: row, p: params, sealed: true}
	// Where the browser goes next, decided now when the browser's session
	// allows (resume.go): the login, or the app with a code; else the
	// resume endpoint.
	next, event, err := s.p.atAuthorize(ctx, c, ar)
	if err != nil {
		return nil, err
	}
	toLogin := next != "" && event == nil
	if next == "" {
		next = st.issuer + "/" + pathResume + "?" + s.p.resumeQuery(ar)
	}
	// A request that travels sealed (sealed.go) is written only with its
	// code; one answered here, or too long to travel sealed, is stored now.
	if event != nil || !ar.sealed {
		ar.sealed = false
		err = s.p.store.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateOPAuthRequest(ctx, row); err != nil {
				return err
			}
			if event != nil {
				return tx.AppendAudit(ctx, event)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if toLogin && s.p.cfg.Login != nil {
		// atAuthorize sends the browser to log in: served in place.
		st.login = next
	}
	c.next, c.nextID = next, row.ID
	return ar, nil
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (zop.AuthRequest, error) {
	return s.authRequest(ctx, id)
}

// authRequest loads a live authorize request; in the same read it loads
// its client for the request (resume needs both).
//
// With the store's reads outside a transaction (sqlstore
// LookupOPAuthRequest, LookupAppByClientID) the two are a statement each:
// they need no common snapshot, and the BEGIN/COMMIT of a View cost more
// than either.
func (s *storage) authRequest(ctx context.Context, id string) (*authRequest, error) {
	var row *gatehouse.OPAuthRequest
	var err error
	if l, ok := s.p.store.(authRequestLookup); ok {
		row, err = l.LookupOPAuthRequest(ctx, tenantOf(ctx), id)
	} else {
		err = s.p.store.View(ctx, func(tx gatehouse.Tx) error {
			if row, err = tx.GetOPAuthRequest(ctx, tenantOf(ctx), id); err != nil {
				return err
			}
			return s.preloadClient(ctx, tx, row.ClientID)
		})
	}
	if err != nil {
		return nil, err
	}
	if !s.now().Before(row.ExpiresAt) || row.CodeHash != nil {
		// Expired, or already answered with a code.
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "The sign-in request has expired. Go back to the app and try again.")
	}
	return loadAuthRequest(row)
}

// SaveAuthCode stores the code's digest. The resume step's own writes
// (the request marked done for the user, the sign-in audit) are committed
// in the same transaction (reqState.complete), so answering the app is
// one commit, and nothing is recorded as signed in unless the code is.
func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	st := stateFrom(ctx)
	return s.p.store.Update(ctx, func(tx gatehouse.Tx) error {
		if st.complete != nil {
			if err := st.complete(tx); err != nil {
				return err
			}
		}
		return tx.SetOPAuthCode(ctx, st.tenant.ID, id, secret.Digest(code), s.now().Add(codeTTL))
	})
}

// AuthRequestByCode consumes a code. A code is single use (RFC 6749
// section 4.1.2): the second use fails and revokes every token the first
// use issued, since one of the two users of the code is an attacker.
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (zop.AuthRequest, error) {
	now := s.now()
	var row *gatehouse.OPAuthRequest
	reused := false
	err := s.p.store.Update(ctx, func(tx gatehouse.Tx) error {
		var err error
		row, err = tx.UseOPAuthCode(ctx, tenantOf(ctx), secret.Digest(code), now)
		if err == nil {
			// zitadel looks the client up next.
			return s.preloadClient(ctx, tx, row.ClientID)
		}
		if gatehouse.IsCode(err, gatehouse.ECONFLICT) && row != nil {
			reused = true
			n, err := tx.RevokeOPTokens(ctx, row.TenantID, grantFilter(row.ID, row.UserID), now)
			if err != nil {
				return err
			}
			return audit(ctx, tx, now, "oidc.code_reused", "app", row.ClientID,
				map[string]any{"grant": row.ID, "user_id": row.UserID, "revoked": n})
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if reused {
		return nil, errors.New("authorization code reused: its tokens are revoked")
	}
	if !now.Before(row.ExpiresAt) || !row.Done {
		return nil, errors.New("authorization code expired")
	}
	return loadAuthRequest(row)
}

// DeleteAuthRequest keeps the row: it must outlive the exchange so a
// reused code is recognised (the store purges it a day after expiry).
func (s *storage) DeleteAuthRequest(context.Context, string) error { return nil }

// --- tokens ----------------------------------------------------------------

// grantOf returns the fields every token of a request carries.
func grantOf(req zop.TokenRequest) (userID, grantID, sessionID string) {
	switch r := req.(type) {
	case *authRequest:
		return r.row.UserID, r.row.ID, r.row.SessionID
	case *refreshRequest:
		return r.tok.UserID, r.tok.GrantID, r.tok.SessionID
	}
	return "", "", ""
}

// checkUser refuses tokens for a user who is gone, deactivated, or no
// longer in the app's allowed groups: deactivation takes effect at the
// next token request, not at token expiry.
//
// The user's groups are read only when needed (needGroups: the "groups"
// scope, or an app limited to some groups) and the store can leave them
// out (sqlstore GetUserWithoutGroups).
func checkUser(ctx context.Context, tx gatehouse.Tx, app *gatehouse.App, userID string, needGroups bool) (*gatehouse.User, error) {
	var u *gatehouse.User
	var err error
	if ng, ok := tx.(userWithoutGroups); ok && !needGroups && len(app.AllowedGroups) == 0 {
		u, err = ng.GetUserWithoutGroups(ctx, app.TenantID, userID)
	} else {
		u, err = tx.GetUser(ctx, app.TenantID, userID)
	}
	return checkActiveUser(app, u, err)
}

// checkLoadedUser is checkUser for a user already read in tx without its
// groups (u, nil when the user is gone): read again, with them, only when
// they are needed.
func checkLoadedUser(ctx context.Context, tx gatehouse.Tx, app *gatehouse.App, userID string, needGroups bool, u *gatehouse.User) (*gatehouse.User, error) {
	if needGroups || len(app.AllowedGroups) > 0 {
		return checkUser(ctx, tx, app, userID, true)
	}
	var err error
	if u == nil || u.ID != userID {
		err = gatehouse.Errorf(gatehouse.ENOTFOUND, "user %s", userID)
	}
	return checkActiveUser(app, u, err)
}

// checkActiveUser refuses a user read with err who is gone, not active, or
// not in the app's allowed groups.
func checkActiveUser(app *gatehouse.App, u *gatehouse.User, err error) (*gatehouse.User, error) {
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, oidc.ErrInvalidGrant().WithDescription("The user no longer exists.")
	}
	if err != nil {
		return nil, err
	}
	if !u.Active() {
		return nil, oidc.ErrInvalidGrant().WithDescription("The user's account is not active.")
	}
	if !groupAllowed(app, u) {
		// invalid_grant: the token endpoint's errors are RFC 6749
		// section 5.2's, which have no access_denied.
		return nil, oidc.ErrInvalidGrant().WithDescription("The user is not allowed to use this app.")
	}
	return u, nil
}

// userWithoutGroups is the store's read of a user without its groups.
type userWithoutGroups interface {
	GetUserWithoutGroups(ctx context.Context, tenantID, id string) (*gatehouse.User, error)
}

// groupAllowed: an app with allowed groups admits only their members.
func groupAllowed(app *gatehouse.App, u *gatehouse.User) bool {
	if len(app.AllowedGroups) == 0 {
		return true
	}
	for _, g := range u.Groups {
		for _, a := range app.AllowedGroups {
			if gatehouse.FoldKey(g) == gatehouse.FoldKey(a) {
				return true
			}
		}
	}
	return false
}

func clientIDOf(req zop.TokenRequest) string {
	switch r := req.(type) {
	case *authRequest:
		return r.row.ClientID
	case *refreshRequest:
		return r.tok.ClientID
	case *clientCredentialsRequest:
		return r.clientID
	}
	return ""
}

// newAccessToken writes an access token row in tx.
func (s *storage) newAccessToken(ctx context.Context, tx gatehouse.Tx, c *client, req zop.TokenRequest, now time.Time) (*gatehouse.OPToken, error) {
	userID, grantID, sessionID := grantOf(req)
	if userID != "" {
		u, err := checkUser(ctx, tx, c.app, userID, slices.Contains(req.GetScopes(), scopeGroups))
		if err != nil {
			return nil, err
		}
		// The ID token of this grant takes its claims from this user,
		// read and checked in the grant's transaction
		// (SetUserinfoFromRequest).
		stateFrom(ctx).user = u
	}
	exp := now.Add(c.accessTTL())
	tk := &gatehouse.OPToken{
		ID: tokenID(accessPrefix, exp), TenantID: c.app.TenantID, ClientID: c.app.ClientID, UserID: userID,
		GrantID: grantID, SessionID: sessionID, Scopes: req.GetScopes(),
		CreatedAt: now, ExpiresAt: exp,
	}
	return tk, tx.CreateOPToken(ctx, tk)
}

func (s *storage) CreateAccessToken(ctx context.Context, req zop.TokenRequest) (string, time.Time, error) {
	c, err := s.loadClient(ctx, clientIDOf(req))
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now()
	var tk *gatehouse.OPToken
	err = s.p.store.Update(ctx, func(tx gatehouse.Tx) error {
		var err error
		tk, err = s.newAccessToken(ctx, tx, c, req, now)
		return err
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return tk.ID, tk.ExpiresAt, nil
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token;
// on the refresh grant it rotates the presented token (RFC 9700 section
// 4.14.2): the old one is marked used in the same transaction, and if it
// was used already (two concurrent uses) the whole grant is revoked.
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req zop.TokenRequest, current string) (string, string, time.Time, error) {
	c, err := s.loadClient(ctx, clientIDOf(req))
	if err != nil {
		return "", "", time.Time{}, err
	}
	now := s.now()
	value := secret.NewToken(refreshPrefix)
	var tk *gatehouse.OPToken
	reused := false
	err = s.p.store.Update(ctx, func(tx gatehouse.Tx) error {
		exp := now.Add(c.refreshTTL())
		rt := &gatehouse.OPRefreshToken{
			ID: tokenID(refreshIDPrefix, exp), TenantID: c.app.TenantID, Hash: secret.Digest(value), ClientID: c.app.ClientID,
			Scopes: req.GetScopes(), CreatedAt: now, ExpiresAt: exp,
		}
		switch r := req.(type) {
		case *refreshRequest:
			if current == "" {
				return errors.New("op: refresh request without its token")
			}
			if err := tx.UseOPRefreshToken(ctx, r.tok.TenantID, r.tok.ID, now); gatehouse.IsCode(err, gatehouse.ECONFLICT) {
				reused = true
				return s.revokeReused(ctx, tx, r.tok, now)
			} else if err != nil {
				return err
			}
			// The new token keeps the grant's scopes (RFC 6749 section 6);
			// only the access token narrows to the requested ones.
			rt.Scopes, rt.AMR, rt.AuthTime, rt.RotatedFrom = r.tok.Scopes, r.tok.AMR, r.tok.AuthTime, r.tok.ID
		case *authRequest:
			rt.AMR, rt.AuthTime = r.GetAMR(), r.row.AuthTime
		default:
			return errors.New("op: refresh tokens are only issued to users")
		}
		rt.UserID, rt.GrantID, rt.SessionID = grantOf(req)
		var err error
		if tk, err = s.newAccessToken(ctx, tx, c, req, now); err != nil {
			return err
		}
		return tx.CreateOPRefreshToken(ctx, rt)
	})
	if err != nil {
		return "", "", time.Time{}, err
	}
	if reused {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("The refresh token was already used.")
	}
	return tk.ID, value, tk.ExpiresAt, nil
}

// revokeReused revokes the grant of a refresh token presented twice.
func (s *storage) revokeReused(ctx context.Context, tx gatehouse.Tx, tok *gatehouse.OPRefreshToken, now time.Time) error {
	n, err := tx.RevokeOPTokens(ctx, tok.TenantID, grantFilter(tok.GrantID, tok.UserID), now)
	if err != nil {
		return err
	}
	return audit(ctx, tx, now, "oidc.refresh_token_reused", "user", tok.UserID,
		map[string]any{"client_id": tok.ClientID, "grant": tok.GrantID, "revoked": n})
}

// TokenRequestByRefreshToken finds a refresh token. A token that was
// already rotated is a replay: either the app or an attacker holds a copy,
// and the provider cannot tell which, so the whole grant is revoked.
func (s *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (zop.RefreshTokenRequest, error) {
	now := s.now()
	var tok *gatehouse.OPRefreshToken
	err := s.p.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		tok, err = tx.GetOPRefreshToken(ctx, tenantOf(ctx), secret.Digest(token))
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case tok.RevokedAt != nil:
		return nil, errors.New("refresh token revoked")
	case tok.UsedAt != nil:
		if err := s.p.store.Update(ctx, func(tx gatehouse.Tx) error { return s.revokeReused(ctx, tx, tok, now) }); err != nil {
			return nil, err
		}
		return nil, errors.New("refresh token reused: its grant is revoked")
	case !now.Before(tok.ExpiresAt):
		return nil, errors.New("refresh token expired")
	}
	return &refreshRequest{tok: tok, scopes: tok.Scopes}, nil
}

// TerminateSession is not used: end_session is handled in logout.go.
func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	var tok *gatehouse.OPRefreshToken
	err := s.p.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		tok, err = tx.GetOPRefreshToken(ctx, tenantOf(ctx), secret.Digest(token))
		return err
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) || (err == nil && tok.ClientID != clientID) {
		return "", "", zop.ErrInvalidRefreshToken
	}
	if err != nil {
		return "", "", err
	}
	return tok.UserID, grantRef + tok.GrantID, nil
}

// RevokeToken revokes an access token, or a refresh token's grant (RFC
// 7009). A client revokes only its own tokens; an unknown token is not an
// error (RFC 7009 section 2.2).
func (s *storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	f := gatehouse.OPTokenFilter{ClientID: clientID, TokenID: tokenOrID}
	if g, ok := strings.CutPrefix(tokenOrID, grantRef); ok {
		// GetRefreshTokenInfo named the grant and its user (every refresh
		// token has one). Without a user the client sent "grant/…" itself,
		// which is no token of ours: nothing to revoke.
		if userID == "" {
			return nil
		}
		f = gatehouse.OPTokenFilter{ClientID: clientID, GrantID: g, UserID: userID}
	}
	if clientID == "" || (f.TokenID == "" && f.GrantID == "") {
		return nil
	}
	err := s.p.store.Update(ctx, func(tx gatehouse.Tx) error {
		f := f
		if strings.HasPrefix(f.TokenID, refreshPrefix) {
			// A refresh token's value: zitadel passes it here when the
			// hint said access_token and it could not read it as one.
			// RFC 7009 section 2.1: a server that does not find the token
			// under the hint searches its other types; a refresh token
			// revokes its grant, as with the right hint.
			tok, err := tx.GetOPRefreshToken(ctx, tenantOf(ctx), secret.Digest(f.TokenID))
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) || (err == nil && tok.ClientID != clientID) {
				return nil
			}
			if err != nil {
				return err
			}
			f = grantFilter(tok.GrantID, tok.UserID)
			f.ClientID = clientID
		}
		_, err := tx.RevokeOPTokens(ctx, tenantOf(ctx), f, s.now())
		return err
	})
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// --- keys --------------------------------------------------------------------

func (s *storage) SigningKey(ctx context.Context) (zop.SigningKey, error) {
	alg := "RS256"
	if c := stateFrom(ctx).client; c != nil {
		alg = c.signingAlg()
	}
	return s.p.keys.signingKey(ctx, tenantOf(ctx), alg)
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}, nil
}

func (s *storage) KeySet(ctx context.Context) ([]zop.Key, error) {
	return s.p.keys.published(ctx, tenantOf(ctx))
}

// --- claims ------------------------------------------------------------------

// userClaims fills the standard claims the scopes ask for.
func userClaims(info *oidc.UserInfo, u *gatehouse.User, scopes []string) {
	info.Subject = u.ID
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			info.Name, info.GivenName, info.FamilyName = u.DisplayName, u.GivenName, u.FamilyName
			info.PreferredUsername = u.Username
		case oidc.ScopeEmail:
			info.Email = u.Email
			// Every address in a tenant was vouched for: by the IdP at
			// JIT (the JIT policy refuses unverified ones), by SCIM or by
			// an admin.
			info.EmailVerified = oidc.Bool(u.Email != "")
		case scopeGroups:
			groups := append([]string{}, u.Groups...)
			slices.Sort(groups)
			info.AppendClaims("groups", groups)
		}
	}
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims, and its "sid".
// The user is the one the grant's transaction just checked (newAccessToken),
// so a grant reads it once; it is read here only when no token was made
// in this request.
func (s *storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req zop.IDTokenRequest, scopes []string) error {
	st := stateFrom(ctx)
	u := st.user
	if u == nil || u.ID != req.GetSubject() || u.TenantID != st.tenant.ID {
		err := s.p.store.View(ctx, func(tx gatehouse.Tx) error {
			var err error
			u, err = tx.GetUser(ctx, st.tenant.ID, req.GetSubject())
			return err
		})
		if err != nil {
			return err
		}
	}
	userClaims(info, u, scopes)
	if sr, ok := req.(interface{ sessionID() string }); ok && sr.sessionID() != "" {
		info.AppendClaims("sid", sr.sessionID())
	}
	return nil
}

// validToken loads an access token of this tenant that is live: not
// revoked, not expired, for subject, and (for users) of an active user.
func (s *storage) validToken(ctx context.Context, tokenID, subject string) (*gatehouse.OPToken, *gatehouse.User, error) {
	var tk *gatehouse.OPToken
	var u *gatehouse.User
	err := s.p.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if tk, err = tx.GetOPToken(ctx, tenantOf(ctx), tokenID); err != nil {
			return err
		}
		if tk.UserID == "" {
			return nil
		}
		u, err = tx.GetUser(ctx, tk.TenantID, tk.UserID)
		return err
	})
	invalid := oidc.ErrAccessDenied().WithDescription("The access token is not valid.")
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return nil, nil, invalid
	}
	if err != nil {
		return nil, nil, err
	}
	wantSub := tk.UserID
	if wantSub == "" {
		wantSub = tk.ClientID
	}
	if tk.RevokedAt != nil || !s.now().Before(tk.ExpiresAt) || wantSub != subject || (u != nil && !u.Active()) {
		return nil, nil, invalid
	}
	return tk, u, nil
}

func (s *storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	tk, u, err := s.validToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if u == nil {
		return oidc.ErrAccessDenied().WithDescription("This access token has no user.")
	}
	userClaims(info, u, tk.Scopes)
	return nil
}

// SetIntrospectionFromToken answers an introspection (RFC 7662). Only the
// client the token was issued to may introspect it: another app of the
// tenant learns nothing (active=false).
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	tk, u, err := s.validToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if tk.ClientID != clientID {
		return errors.New("token of another client")
	}
	if u != nil {
		info := new(oidc.UserInfo)
		userClaims(info, u, tk.Scopes)
		resp.SetUserInfo(info)
	}
	resp.Subject = subject
	resp.Scope = tk.Scopes
	resp.ClientID = tk.ClientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(tk.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(tk.CreatedAt)
	resp.Audience = []string{tk.ClientID}
	resp.Issuer = stateFrom(ctx).issuer
	resp.JWTID = tk.ID
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// JWT client authentication and the JWT bearer grant are not offered.
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNotFound
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNotFound
}

func (s *storage) Health(ctx context.Context) error { return s.p.store.Ping(ctx) }

// RevokeUserTokens revokes every access and refresh token of a user in
// tx: the API and SCIM call it when they deactivate or delete a user, in
// the same transaction. (Userinfo, introspection and the token endpoint
// also refuse an inactive user's tokens on their own.)
func RevokeUserTokens(ctx context.Context, tx gatehouse.Tx, tenantID, userID string, at time.Time) (int, error) {
	if userID == "" {
		return 0, nil
	}
	return tx.RevokeOPTokens(ctx, tenantID, gatehouse.OPTokenFilter{UserID: userID}, at)
}
