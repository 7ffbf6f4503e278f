package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/web"
)

// CookieName is the console session cookie.
const CookieName = "gatehouse_console"

// signinCSRFCookie carries the sign-in form's token before any session
// exists (double submit), so a login form cannot be posted cross-site.
const signinCSRFCookie = "gatehouse_console_signin"

// Console session lifetimes: an operator's console session ends after an
// hour without use and at most eight hours after sign-in.
const (
	sessionIdle     = time.Hour
	sessionAbsolute = 8 * time.Hour
	// refreshEvery: the cookie's last-seen time is rewritten at most this
	// often.
	refreshEvery = 5 * time.Minute
)

// cookieAAD binds the sealed cookie to its purpose.
var cookieAAD = []byte("gatehouse console session v1")

// principal is who a console request acts as.
type principal struct {
	Superuser bool
	TenantID  string // the tenant admin's only tenant
	UserID    string
	Name      string
	sid       string
	csrf      string
}

// sealedSession is the console cookie's sealed content. The cookie is the
// record: AES-GCM (the keyring's envelope) makes it unreadable and
// unforgeable, and it expires on its own.
type sealedSession struct {
	SID  string `json:"sid"`
	Su   bool   `json:"su,omitempty"`
	TID  string `json:"tid,omitempty"`
	UID  string `json:"uid,omitempty"`
	Name string `json:"n,omitempty"`
	// Key ties an operator session to the current superuser token:
	// replacing the token signs every operator out.
	Key  string `json:"k,omitempty"`
	Iat  int64  `json:"iat"`
	Seen int64  `json:"seen"`
}

// tokenKey is a short fingerprint of the superuser token digest.
func (c *Console) tokenKey() string {
	d := sha256.Sum256(append([]byte("console "), c.cfg.SuperuserTokenDigest...))
	return base64.RawURLEncoding.EncodeToString(d[:12])
}

func randomID() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// csrfFor is the CSRF token of a console session: an HMAC of its id, so it
// needs no storage and differs per session.
func (c *Console) csrfFor(sid string) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte("csrf:" + sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *Console) setSession(w http.ResponseWriter, s *sealedSession) error {
	pt, err := json.Marshal(s)
	if err != nil {
		return err
	}
	box, err := c.cfg.Keyring.Seal(pt, cookieAAD)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: base64.RawURLEncoding.EncodeToString(box),
		Path: c.base + "/", HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode,
		Expires: time.Unix(s.Iat, 0).Add(sessionAbsolute)})
	return nil
}

func (c *Console) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: c.base + "/", MaxAge: -1,
		Expires: time.Unix(0, 0), HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
}

// principalOf reads and checks the console cookie: nil when absent,
// invalid or expired (fail closed). A tenant admin's console session lasts
// only as long as their tenant session and admin-group membership.
func (c *Console) principalOf(w http.ResponseWriter, r *http.Request) *principal {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 4096 {
		return nil
	}
	box, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil
	}
	pt, err := c.cfg.Keyring.Open(box, cookieAAD)
	if err != nil {
		return nil
	}
	var s sealedSession
	if json.Unmarshal(pt, &s) != nil || s.SID == "" {
		return nil
	}
	now := c.clock.Now()
	if now.After(time.Unix(s.Iat, 0).Add(sessionAbsolute)) || now.After(time.Unix(s.Seen, 0).Add(sessionIdle)) {
		return nil
	}
	p := &principal{Superuser: s.Su, TenantID: s.TID, UserID: s.UID, Name: s.Name, sid: s.SID, csrf: c.csrfFor(s.SID)}
	if s.Su {
		if len(c.cfg.SuperuserTokenDigest) == 0 || !secret.EqualString(s.Key, c.tokenKey()) {
			return nil
		}
	} else if s.TID == "" || !c.stillAdmin(r, s.TID, s.UID) {
		return nil
	}
	if now.Sub(time.Unix(s.Seen, 0)) >= refreshEvery {
		s.Seen = now.Unix()
		if err := c.setSession(w, &s); err != nil {
			c.log.WarnContext(r.Context(), "console: refresh session cookie", "err", err)
		}
	}
	return p
}

// stillAdmin checks a tenant admin's tenant session (it ends at sign-out,
// deactivation or expiry) and admin-group membership on every request.
func (c *Console) stillAdmin(r *http.Request, tenantID, userID string) bool {
	if c.cfg.Sessions == nil {
		return false
	}
	_, u, err := c.cfg.Sessions.Current(r.Context(), r, tenantID)
	if err != nil || u.ID != userID {
		return false
	}
	ok, err := c.isTenantAdmin(r, tenantID, u.ID)
	return err == nil && ok
}

// isTenantAdmin reports whether the user belongs to one of the tenant's
// admin groups (names compared case-insensitively).
func (c *Console) isTenantAdmin(r *http.Request, tenantID, userID string) (bool, error) {
	ctx := r.Context()
	admin := false
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		t, err := tx.GetTenant(ctx, tenantID)
		if err != nil {
			return err
		}
		if len(t.AdminGroups) == 0 {
			return nil
		}
		ms, err := tx.ListUserMemberships(ctx, tenantID, userID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			g, err := tx.GetGroup(ctx, tenantID, m.GroupID)
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				continue
			}
			if err != nil {
				return err
			}
			admin = admin || slices.ContainsFunc(t.AdminGroups, func(n string) bool { return gatehouse.FoldKey(n) == gatehouse.FoldKey(g.Name) })
		}
		return nil
	})
	return admin, err
}

// signinToken returns the sign-in form's CSRF token, setting its cookie
// when the browser has none.
func (c *Console) signinToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(signinCSRFCookie); err == nil && len(ck.Value) >= 20 && len(ck.Value) <= 64 {
		return ck.Value
	}
	v := randomID()
	http.SetCookie(w, &http.Cookie{Name: signinCSRFCookie, Value: v, Path: c.base + "/", HttpOnly: true,
		Secure: c.secure, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return v
}

// handleSignin shows the sign-in page (or goes home when signed in).
func (c *Console) handleSignin(w http.ResponseWriter, r *http.Request) {
	if p := c.principalOf(w, r); p != nil {
		http.Redirect(w, r, c.home(p), http.StatusSeeOther)
		return
	}
	c.renderSignin(w, r, http.StatusOK, nil, "")
}

func (c *Console) renderSignin(w http.ResponseWriter, r *http.Request, status int, errs map[string]string, org string) {
	v := &view{Title: "Sign in", Base: c.base, CSRF: c.signinToken(w, r), Errors: errs,
		Form: map[string][]string{"org": {org}}, Flash: flashText(r.URL.Query().Get("m"))}
	c.renderView(w, status, "signin", v)
}

// handleSigninToken: POST /console/signin — the operator's superuser token.
func (c *Console) handleSigninToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	ck, err := r.Cookie(signinCSRFCookie)
	if err != nil || !secret.EqualString(ck.Value, r.PostFormValue("csrf")) {
		c.renderSignin(w, r, http.StatusForbidden, map[string]string{"token": "The form expired; it was reloaded. Paste the token again."}, "")
		return
	}
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if tok == "" || len(tok) > 512 || len(c.cfg.SuperuserTokenDigest) == 0 || !secret.Matches(tok, c.cfg.SuperuserTokenDigest) {
		c.log.WarnContext(r.Context(), "console: superuser sign-in refused", "request_id", r.Header.Get("X-Request-Id"))
		c.renderSignin(w, r, http.StatusUnauthorized, map[string]string{"token": "This is not the superuser token. It was printed when Gatehouse first started (or set with GATEHOUSE_ADMIN_TOKEN)."}, "")
		return
	}
	now := c.clock.Now().Unix()
	if err := c.setSession(w, &sealedSession{SID: randomID(), Su: true, Name: "Operator", Key: c.tokenKey(), Iat: now, Seen: now}); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.log.InfoContext(r.Context(), "console: operator signed in", "request_id", r.Header.Get("X-Request-Id"))
	http.Redirect(w, r, c.base+"/", http.StatusSeeOther)
}

// handleSigninOrg: GET /console/signin/org?org= — a tenant admin names
// their organization (slug or email) and goes to its SSO login, which
// returns to /console/signin/sso/{tenant}.
func (c *Console) handleSigninOrg(w http.ResponseWriter, r *http.Request) {
	org := strings.TrimSpace(r.URL.Query().Get("org"))
	if org == "" || len(org) > 320 {
		c.renderSignin(w, r, http.StatusBadRequest, map[string]string{"org": "Enter your organization's short name or your work email."}, org)
		return
	}
	ctx := r.Context()
	var t *gatehouse.Tenant
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if strings.Contains(org, "@") {
			t, err = tx.GetTenantByDomain(ctx, gatehouse.EmailDomain(org))
		} else {
			t, err = tx.GetTenantBySlug(ctx, strings.ToLower(org))
		}
		return err
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		c.renderSignin(w, r, http.StatusNotFound, map[string]string{"org": "No organization here matches " + org + ". Ask your IT administrator for your organization's short name."}, org)
		return
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	login := web.LoginURL(c.rootPath, t.Slug, Prefix+"/signin/sso/"+t.Slug)
	if strings.Contains(org, "@") {
		login += "&login_hint=" + urlQueryEscape(org)
	}
	http.Redirect(w, r, login, http.StatusSeeOther)
}

// handleSigninSSO: GET /console/signin/sso/{tenant} — back from the
// tenant's login: admins of the tenant get a console session for it.
func (c *Console) handleSigninSSO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var t *gatehouse.Tenant
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		t, err = tx.GetTenantBySlug(ctx, r.PathValue("tenant"))
		return err
	})
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if c.cfg.Sessions == nil {
		c.fail(w, r, nil, gatehouse.Errorf(gatehouse.EFORBIDDEN, "Organization sign-in is not available on this server."))
		return
	}
	_, u, err := c.cfg.Sessions.Current(ctx, r, t.ID)
	if err != nil {
		http.Redirect(w, r, web.LoginURL(c.rootPath, t.Slug, Prefix+"/signin/sso/"+t.Slug), http.StatusSeeOther)
		return
	}
	ok, err := c.isTenantAdmin(r, t.ID, u.ID)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if !ok {
		msg := "You are signed in to " + t.Name + " as " + u.Email + ", but you are not one of its administrators."
		if len(t.AdminGroups) > 0 {
			msg += " Administrators are the members of: " + strings.Join(t.AdminGroups, ", ") + "."
		} else {
			msg += " This organization has no admin groups yet; the operator can set them."
		}
		c.fail(w, r, nil, gatehouse.Errorf(gatehouse.EFORBIDDEN, "%s", msg))
		return
	}
	now := c.clock.Now().Unix()
	name := u.DisplayName
	if name == "" {
		name = u.Email
	}
	if err := c.setSession(w, &sealedSession{SID: randomID(), TID: t.ID, UID: u.ID, Name: name, Iat: now, Seen: now}); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	// This request ends a redirect chain that started at the IdP, another
	// site: browsers withhold SameSite=Strict cookies for the whole chain,
	// so a redirect would arrive without the cookie just set. A page that
	// moves on by itself starts a same-site navigation that carries it.
	c.renderView(w, http.StatusOK, "signedin", &view{Title: "Signed in", Form: map[string][]string{"next": {c.base + "/t/" + t.Slug + "/"}}})
}

// handleSignout: POST /console/signout (CSRF-checked like every form).
func (c *Console) handleSignout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	p := c.principalOf(w, r)
	if p != nil && !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(p.csrf)) {
		c.fail(w, r, p, errCSRF)
		return
	}
	c.clearSession(w)
	http.Redirect(w, r, c.base+"/signin?m=signedout", http.StatusSeeOther)
}

var errCSRF = gatehouse.Errorf(gatehouse.EFORBIDDEN, "This form is out of date or was not sent from the console, so nothing was changed. Reload the page and try again.")

// home is where a principal starts.
func (c *Console) home(p *principal) string {
	if p.Superuser {
		return c.base + "/"
	}
	return c.base + "/t/" + p.TenantID + "/"
}
