package op

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// replicaSkew is the clock skew tolerated between replicas.
const replicaSkew = 5 * time.Second

// publicSID is the session's "sid" claim (OIDC Front/Back-Channel Logout):
// derived from the session id, which is itself the digest of the cookie
// token, so neither the token nor the store key leaves the server.
func publicSID(sessionID string) string {
	d := sha256.Sum256([]byte("gatehouse sid " + sessionID))
	return base64.RawURLEncoding.EncodeToString(d[:18])
}

// resume continues a stored authorize request: GET
// /t/{tenant}/authorize/resume?id=... It is where zitadel sends the
// browser after storing the request (client.LoginURL), and where the login
// returns to (return_to). With a fitting browser session it answers the
// app (a code on its redirect URI); otherwise it sends the browser to the
// tenant's login, or answers login_required for prompt=none.
func (p *Provider) resume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := stateFrom(ctx)
	var ar *authRequest
	var err error
	if q := r.URL.Query(); q.Has("ar") {
		ar, err = p.requests.open(st.tenant.ID, q.Get("ar"), p.clock.Now())
	} else {
		// A stored request: too long to travel sealed, or made by a
		// replica of an earlier version.
		ar, err = p.storage.authRequest(ctx, q.Get("id"))
	}
	if err != nil {
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			p.log.ErrorContext(ctx, "op: load auth request", "err", err)
		}
		p.expiredPage(w, st.tenant)
		return
	}
	c, err := p.storage.loadClient(ctx, ar.row.ClientID)
	if err != nil {
		p.page(w, http.StatusBadRequest, st.tenant, "Unknown app", "This app is not registered (any more).")
		return
	}
	if !redirectRegistered(c, ar) {
		p.page(w, http.StatusBadRequest, st.tenant, "Unknown app", "This app's return address is not registered (any more). Go back to the app and sign in again.")
		return
	}
	sess, user, err := p.cfg.Sessions.Current(ctx, r, st.tenant.ID)
	if err != nil && !gatehouse.IsCode(err, gatehouse.EUNAUTHORIZED) {
		p.log.ErrorContext(ctx, "op: current session", "err", err)
		p.page(w, http.StatusInternalServerError, st.tenant, "Something went wrong", "Internal error. Try again in a moment.")
		return
	}
	needs, force := true, p.wantsFreshLogin(ar, nil)
	if err == nil {
		needs, force = p.needsLogin(ar, c.app, sess, user)
	}
	if needs {
		if slices.Contains(ar.p.Prompt, oidc.PromptNone) {
			// OpenID Connect Core section 3.1.2.6: prompt=none never
			// shows a page.
			zop.AuthRequestError(w, r, ar, oidc.ErrLoginRequired(), p.zitadel)
			return
		}
		// Remember when this request sent the browser to log in: only a
		// login after that answers prompt=login and max_age (nothing else
		// reads the moment, so only those requests write it).
		// A sealed request carries the moment in its new seal (loginURL).
		if asksFreshLogin(ar) {
			ar.row.AuthTime = p.clock.Now().UTC()
		}
		// A sealed request that no longer fits sealed in a return address
		// (the login moment made it longer) is stored now, as one that
		// never did, so the login finds it.
		sealed := ar.sealed
		next := p.loginURL(st.tenant, ar, c.app, force)
		if !ar.sealed && (sealed || asksFreshLogin(ar)) {
			err := p.store.Update(ctx, func(tx gatehouse.Tx) error {
				if sealed {
					old, err := tx.GetOPAuthRequest(ctx, ar.row.TenantID, ar.row.ID)
					if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
						return tx.CreateOPAuthRequest(ctx, ar.row)
					}
					if err != nil {
						return err
					}
					if old.CodeHash != nil {
						return errAnswered
					}
				}
				return tx.CompleteOPAuthRequest(ctx, ar.row)
			})
			if err == errAnswered {
				p.expiredPage(w, st.tenant)
				return
			}
			if err != nil {
				p.log.ErrorContext(ctx, "op: mark auth request sent to login", "err", err)
				p.page(w, http.StatusInternalServerError, st.tenant, "Something went wrong", "Internal error. Try again in a moment.")
				return
			}
		}
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	if !groupAllowed(c.app, user) {
		err := p.store.Update(ctx, func(tx gatehouse.Tx) error {
			return audit(ctx, tx, p.clock.Now().UTC(), "oidc.access_denied", "user", user.ID,
				map[string]any{"client_id": c.app.ClientID, "reason": "not_in_allowed_groups"})
		})
		if err != nil {
			p.log.ErrorContext(ctx, "op: audit refusal", "err", err)
		}
		p.notAllowed(w, st.tenant, c.app, user)
		return
	}
	// First-party apps: no consent screen; answer the app at once. The
	// request done for this user, its code and the sign-in's audit are
	// written in one transaction: nothing is recorded as signed in unless
	// the code is, and a failure leaves the request as it was.
	code := p.codeRow(ar, user, sess)
	event := p.signedInEvent(st.tenant, c.app, user, sess)
	err = p.store.Update(ctx, func(tx gatehouse.Tx) error {
		if err := writeAnswer(ctx, tx, ar); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, event)
	})
	if err == errAnswered {
		p.expiredPage(w, st.tenant)
		return
	}
	if err != nil {
		zop.AuthRequestError(w, r, ar, err, p.zitadel)
		return
	}
	next, page, err := p.codeAnswer(ar, code)
	if err != nil {
		zop.AuthRequestError(w, r, ar, err, p.zitadel)
		return
	}
	if page != nil {
		page(w, r)
		return
	}
	http.Redirect(w, r, next, http.StatusFound)
}

// expiredPage answers a request that is expired, unknown or answered
// before.
func (p *Provider) expiredPage(w http.ResponseWriter, t *gatehouse.Tenant) {
	p.page(w, http.StatusBadRequest, t, "This sign-in link has expired",
		"The sign-in request has expired or was already used. Go back to the app and sign in again.")
}

// redirectRegistered reports whether ar's redirect URI is still one of
// its app's (zitadel's rule, as at the authorize endpoint): a request lives
// authRequestTTL, sealed or stored, and an address the app's admin removed
// meanwhile gets no code (RFC 6749 section 3.1.2), nor an error answer.
func redirectRegistered(c *client, ar *authRequest) bool {
	return zop.ValidateAuthReqRedirectURI(c, ar.GetRedirectURI(), ar.GetResponseType()) == nil
}

// newCode is an authorization code: 256 random bits, stored as their
// digest (SaveAuthCode) and looked up by it at the token endpoint, so the
// code needs no structure (zitadel's was the AES-GCM JWE of the request
// id, which nothing decrypted).
func newCode() string { return secret.NewToken("") }

// codeResponseURL is the app's redirect URI with the code and state, in
// the query or the fragment as the response mode asks (zitadel's encoding).
func (p *Provider) codeResponseURL(ar *authRequest, code string) (string, error) {
	return zop.AuthResponseURL(ar.GetRedirectURI(), ar.GetResponseType(), ar.GetResponseMode(),
		&zop.CodeResponseType{Code: code, State: ar.GetState()}, p.zitadel.Encoder())
}

// signedInEvent is the audit of an app's sign-in, written with its code.
func (p *Provider) signedInEvent(t *gatehouse.Tenant, app *gatehouse.App, user *gatehouse.User, sess *gatehouse.Session) *gatehouse.AuditEvent {
	return &gatehouse.AuditEvent{
		ID: gatehouse.NewID("aud"), TenantID: t.ID, Time: p.clock.Now().UTC(), ActorType: "user", ActorID: user.ID,
		Action: "app.signed_in", TargetType: "app", TargetID: app.ID,
		Details: map[string]any{"client_id": app.ClientID, "connection_id": sess.ConnectionID},
	}
}

// atAuthorize takes, while the authorize endpoint stores the request ar,
// the step resume would take next, when it is one of the two common ones:
// the browser has no session (or one that cannot answer), so it goes to
// the tenant's login; or its session answers, so it goes back to the app
// with a code. ar.row is set as resume would leave it, and is written by
// the caller in the same transaction as event (when not nil). The browser
// thus skips the resume hop: a request, a read of the authorize request
// and a read of the session, and for a sign-in one write less.
//
// A form_post answer is a page, not a redirect: where the authorize
// endpoint serves answers in place (Config.Login, inPlaceLogin), next is
// the stored request's resume address and st.page the page that posts the
// code, written instead of the redirect to next once the code is stored.
//
// Everything else returns "" and is left to resume, as before: prompt=none
// without a usable session (login_required goes back to the app), a user
// outside the app's allowed groups (a page), form_post without the
// in-place answer, and a session that could not be read.
func (p *Provider) atAuthorize(ctx context.Context, c *client, ar *authRequest) (next string, event *gatehouse.AuditEvent, err error) {
	st := stateFrom(ctx)
	if st.req == nil || p.resumeAlways.Load() {
		return "", nil, nil
	}
	sess, user, err := p.cfg.Sessions.Current(ctx, st.req, st.tenant.ID)
	if err != nil && !gatehouse.IsCode(err, gatehouse.EUNAUTHORIZED) {
		return "", nil, nil
	}
	needs, force := true, p.wantsFreshLogin(ar, nil)
	if err == nil {
		needs, force = p.needsLogin(ar, c.app, sess, user)
		if !needs && c.cached {
			// The session answers: the code is issued here, so from the
			// app as stored, as resume and AnswerLogin issue it, not from
			// the replica's cached copy the request was validated with.
			// An app gone, or without the request's redirect URI or the
			// code grant, is left to resume, which refuses it.
			if !p.storage.freshClient(ctx, c) || !redirectRegistered(c, ar) || !c.hasGrant(grantCode) {
				return "", nil, nil
			}
			needs, force = p.needsLogin(ar, c.app, sess, user)
		}
	}
	now := p.clock.Now().UTC()
	if needs {
		if slices.Contains(ar.p.Prompt, oidc.PromptNone) {
			return "", nil, nil
		}
		// The moment the browser is sent to log in (resume's rule).
		ar.row.AuthTime = now
		return p.loginURL(st.tenant, ar, c.app, force), nil, nil
	}
	formPost := ar.GetResponseMode() == oidc.ResponseModeFormPost
	if !groupAllowed(c.app, user) || formPost && p.cfg.Login == nil {
		return "", nil, nil
	}
	// Done for this user, with its code, as resume would leave it.
	code := p.codeRow(ar, user, sess)
	next, page, err := p.codeAnswer(ar, code)
	if err != nil {
		return "", nil, err
	}
	if page != nil {
		// Stored with its code (an answered request never travels
		// sealed): resume at this address finds it answered.
		ar.sealed = false
		next = st.issuer + "/" + pathResume + "?" + p.resumeQuery(ar)
		st.page, st.pageAt = page, next
	}
	return next, p.signedInEvent(st.tenant, c.app, user, sess), nil
}

// asksFreshLogin: the request asks for a fresh authentication (prompt=login
// or max_age, OpenID Connect Core section 3.1.2.1).
func asksFreshLogin(ar *authRequest) bool {
	return slices.Contains(ar.p.Prompt, oidc.PromptLogin) || ar.p.MaxAge != nil
}

var formPostTmpl = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in</title></head>
<body>
<form method="post" action="{{.Action}}">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<noscript><button type="submit">Continue</button></noscript>
</form>
<script nonce="{{.Nonce}}">document.forms[0].submit()</script>
</body></html>
`))

// formPost answers with the code as an auto-submitted form (OAuth 2.0
// Form Post Response Mode). zitadel's own page submits from an inline
// onload handler, which the server's Content-Security-Policy blocks; this
// one runs a script allowed by a per-response nonce, and the policy lets
// the form go only to the app's redirect URI.
func (p *Provider) formPost(w http.ResponseWriter, r *http.Request, ar *authRequest, code string) {
	params := map[string]string{"code": code}
	if st := ar.GetState(); st != "" {
		params["state"] = st
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	action := ar.GetRedirectURI()
	origin := action
	if u, err := url.Parse(action); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; form-action "+origin+"; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(http.StatusOK)
	if err := formPostTmpl.Execute(w, map[string]any{"Action": action, "Params": params, "Nonce": nonce}); err != nil {
		p.log.ErrorContext(r.Context(), "op: render form_post", "err", err)
	}
}

// needsLogin reports whether the browser's session cannot answer ar, and
// whether that login must be a fresh authentication at the IdP too
// (force). A login that happened after the request sent the browser to
// log in always can answer: it is the re-authentication that prompt=login
// and max_age ask for.
func (p *Provider) needsLogin(ar *authRequest, app *gatehouse.App, sess *gatehouse.Session, user *gatehouse.User) (needs, force bool) {
	fresh := freshLogin(ar, sess)
	// prompt=login (OpenID Connect Core section 3.1.2.1).
	if slices.Contains(ar.p.Prompt, oidc.PromptLogin) && !fresh {
		return true, true
	}
	// max_age (OpenID Connect Core section 3.1.2.1): seconds since the
	// user last actively authenticated.
	if ar.p.MaxAge != nil && !fresh && p.clock.Now().Sub(sess.AuthTime) > time.Duration(*ar.p.MaxAge)*time.Second {
		return true, true
	}
	// An app limited to some connections accepts only sessions that
	// signed in through one of them.
	if len(app.AllowedConnections) > 0 && !slices.Contains(app.AllowedConnections, sess.ConnectionID) {
		return true, p.wantsFreshLogin(ar, sess)
	}
	// id_token_hint names another user than the signed-in one.
	if ar.p.HintSubject != "" && ar.p.HintSubject != user.ID {
		return true, p.wantsFreshLogin(ar, sess)
	}
	return false, false
}

// freshLogin reports whether sess signed in after ar sent the browser to
// log in (ar.row.AuthTime holds that moment until the request is done; it
// is zero before). A session older than the request itself never is, so
// prompt=login and max_age=0 right after a sign-in still log in again.
// The tolerance absorbs clock skew between replicas (the redirect made by
// one, the login done on another): without it a skewed replica would send
// a user who just logged in back to log in again.
func freshLogin(ar *authRequest, sess *gatehouse.Session) bool {
	if ar.row.Done || ar.row.AuthTime.IsZero() || sess == nil {
		return false
	}
	return !sess.AuthTime.Before(ar.row.AuthTime.Add(-replicaSkew))
}

// wantsFreshLogin: a login for ar must authenticate at the IdP again when
// the app asked for prompt=login or max_age, unless sess already did so
// for this request.
func (p *Provider) wantsFreshLogin(ar *authRequest, sess *gatehouse.Session) bool {
	return asksFreshLogin(ar) && !freshLogin(ar, sess)
}

// loginURL is the tenant's login page, returning to the resume endpoint.
// An app limited to one connection goes straight to it. force asks the
// IdP for a fresh authentication (prompt=login on the login page).
func (p *Provider) loginURL(t *gatehouse.Tenant, ar *authRequest, app *gatehouse.App, force bool) string {
	tpath := p.basePath + "/t/" + url.PathEscape(t.Slug)
	v := url.Values{"return_to": {tpath + "/" + pathResume + "?" + p.resumeQuery(ar)}}
	if ar.p.LoginHint != "" {
		v.Set("login_hint", ar.p.LoginHint)
	}
	if len(app.AllowedConnections) == 1 {
		v.Set("connection", app.AllowedConnections[0])
	}
	if force {
		v.Set("prompt", oidc.PromptLogin)
	}
	return tpath + "/login?" + v.Encode()
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}p{line-height:1.5}.muted{color:#666}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Contact}}<p class="muted">If you think this is a mistake, ask {{.Contact}}.</p>{{end}}
{{if .Tenant}}<p class="muted">{{.Tenant}}</p>{{end}}
</body></html>
`))

// page answers with a small HTML page.
func (p *Provider) page(w http.ResponseWriter, status int, t *gatehouse.Tenant, title, msg string) {
	data := map[string]string{"Title": title, "Message": msg}
	if t != nil {
		data["Tenant"], data["Contact"] = t.Name, t.SupportContact
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, data); err != nil {
		p.log.Error("op: render page", "err", err)
	}
}

// notAllowed is the clear refusal for a user outside the app's allowed
// groups: 403, no redirect to the app.
func (p *Provider) notAllowed(w http.ResponseWriter, t *gatehouse.Tenant, app *gatehouse.App, u *gatehouse.User) {
	who := u.Email
	if who == "" {
		who = u.Username
	}
	p.page(w, http.StatusForbidden, t, "You are not allowed to use "+app.Name,
		"You are signed in as "+who+", but "+app.Name+" is only open to members of certain groups, and you are not in any of them.")
}
