package op

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	jose "github.com/go-jose/go-jose/v4"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// logoutTokenTTL bounds a back-channel logout token's life: it is
// delivered at once or not at all.
const logoutTokenTTL = 2 * time.Minute

// backchannelEvent is the event member of a logout token (OIDC
// Back-Channel Logout 1.0 section 2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// endSession is RP-initiated logout (OpenID Connect RP-Initiated Logout
// 1.0): GET or POST /t/{tenant}/end_session with id_token_hint,
// client_id, post_logout_redirect_uri and state. zitadel validates the
// request (the hint's signature, the redirect URI registered for the
// client); the browser's session ends here, the apps that got tokens in it
// hear of it by back-channel logout, and the browser goes to the app's
// post-logout URI, or to the tenant's landing page.
func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := stateFrom(ctx)
	req, err := zop.ParseEndSessionRequest(r, p.zitadel.Decoder())
	if err != nil {
		p.page(w, http.StatusBadRequest, st.tenant, "Sign-out failed", "The sign-out request is not valid.")
		return
	}
	es, err := zop.ValidateEndSessionRequest(ctx, req, p.zitadel)
	if err != nil {
		p.page(w, http.StatusBadRequest, st.tenant, "Sign-out failed",
			"The sign-out request is not valid (unknown app, or a return address it did not register).")
		return
	}
	sess, user, err := p.cfg.Sessions.Current(ctx, r, st.tenant.ID)
	// The hint names whom the app wants signed out; a browser signed in
	// as someone else is left alone.
	if err == nil && (es.UserID == "" || es.UserID == user.ID) {
		if err := p.cfg.Sessions.End(ctx, w, r); err != nil {
			p.log.ErrorContext(ctx, "op: end session", "err", err)
		}
		p.backchannelLogout(ctx, st.tenant, user.ID, publicSID(sess.ID))
	}
	target := es.RedirectURI
	if !strings.HasPrefix(target, "https://") && !strings.HasPrefix(target, "http://") {
		target = p.basePath + "/t/" + url.PathEscape(st.tenant.Slug) + "/"
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// SessionEnded tells the apps that got tokens in s, and registered a
// backchannel_logout_uri, that it ended. end_session calls it itself; the
// web package's logout (and a SAML single logout) should call it for the
// session it ends. It returns when every delivery finished or timed out.
func (p *Provider) SessionEnded(ctx context.Context, s *gatehouse.Session) {
	var t *gatehouse.Tenant
	err := p.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		t, err = tx.GetTenant(ctx, s.TenantID)
		return err
	})
	if err != nil {
		p.log.ErrorContext(ctx, "op: back-channel logout: tenant", "err", err)
		return
	}
	p.backchannelLogout(ctx, t, s.UserID, publicSID(s.ID))
}

// backchannelLogout tells every app that got tokens in session sid, and
// registered a backchannel_logout_uri, that the session ended. Deliveries
// run in parallel and are waited for, each bounded by the HTTP client's
// timeout; a failure is logged, never shown to the user.
func (p *Provider) backchannelLogout(ctx context.Context, t *gatehouse.Tenant, userID, sid string) {
	if err := p.expireSessionCodes(ctx, t.ID, sid); err != nil {
		p.log.ErrorContext(ctx, "op: sign-out: expire the session's codes", "err", err)
	}
	var apps []*gatehouse.App
	err := p.store.View(ctx, func(tx gatehouse.Tx) error {
		ids, err := sessionClients(ctx, tx, t.ID, userID, sid)
		if err != nil {
			return err
		}
		for _, id := range ids {
			a, err := tx.GetAppByClientID(ctx, t.ID, id)
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				continue
			}
			if err != nil {
				return err
			}
			if a.BackchannelLogoutURI != "" {
				apps = append(apps, a)
			}
		}
		return nil
	})
	if err != nil {
		p.log.ErrorContext(ctx, "op: back-channel logout: list apps", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.sendLogoutToken(context.WithoutCancel(ctx), t, a, userID, sid); err != nil {
				p.log.WarnContext(ctx, "op: back-channel logout failed", "client_id", a.ClientID, "err", err)
			}
		}()
	}
	wg.Wait()
}

// userSessionClients is the store's list of a session's clients through
// the session's user (sqlstore ListOPUserSessionClients: the token tables
// are indexed by tenant, user and session, not by session alone).
type userSessionClients interface {
	ListOPUserSessionClients(ctx context.Context, tenantID, userID, sessionID string) ([]string, error)
}

// sessionClients lists the client ids given tokens in session sid of userID.
func sessionClients(ctx context.Context, tx gatehouse.Tx, tenantID, userID, sid string) ([]string, error) {
	if l, ok := tx.(userSessionClients); ok && userID != "" {
		return l.ListOPUserSessionClients(ctx, tenantID, userID, sid)
	}
	return tx.ListOPSessionClients(ctx, tenantID, sid)
}

// sessionCodeExpirer is the store's expiry of a session's unredeemed codes
// (sqlstore ExpireOPSessionCodes).
type sessionCodeExpirer interface {
	ExpireOPSessionCodes(ctx context.Context, tenantID, sessionID string, at time.Time) (int, error)
}

// expireSessionCodes ends the authorization codes that sign-ins of session
// sid issued and no app has redeemed: a session signed out gives no app
// tokens afterwards (Keycloak refuses such a code too: its codes belong
// to the user session). Every sign-out passes here (end_session, and
// SessionEnded for the web logout and SAML single logout).
func (p *Provider) expireSessionCodes(ctx context.Context, tenantID, sid string) error {
	now := p.clock.Now().UTC()
	return p.store.Update(ctx, func(tx gatehouse.Tx) error {
		if e, ok := tx.(sessionCodeExpirer); ok {
			_, err := e.ExpireOPSessionCodes(ctx, tenantID, sid, now)
			return err
		}
		return nil
	})
}

// LogoutToken signs a back-channel logout token for app (OIDC Back-Channel
// Logout 1.0 section 2.4): typ logout+jwt, sub and sid, the logout event,
// and no nonce.
func (p *Provider) logoutToken(ctx context.Context, t *gatehouse.Tenant, app *gatehouse.App, userID, sid string) (string, error) {
	k, err := p.keys.signingKey(ctx, t.ID, normalizeAlg(app.IDTokenSigningAlg))
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		return "", err
	}
	now := p.clock.Now()
	claims := map[string]any{
		"iss": p.issuer(t), "aud": app.ClientID, "iat": now.Unix(), "exp": now.Add(logoutTokenTTL).Unix(),
		"jti": gatehouse.NewID("lgt"), "sub": userID, "sid": sid,
		"events": map[string]any{backchannelEvent: map[string]any{}},
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(body)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (p *Provider) sendLogoutToken(ctx context.Context, t *gatehouse.Tenant, app *gatehouse.App, userID, sid string) error {
	tok, err := p.logoutToken(ctx, t, app, userID, sid)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.BackchannelLogoutURI,
		strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Message: "The app refused the logout token.",
			Err: errStatus(resp.StatusCode)}
	}
	return nil
}

type errStatus int

func (e errStatus) Error() string { return "HTTP status " + strconv.Itoa(int(e)) }
