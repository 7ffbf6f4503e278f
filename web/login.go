package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// LoginOptions are the parameters of one login start.
type LoginOptions struct {
	// ReturnTo is a local path to go to after sign-in (ValidReturnTo).
	ReturnTo string
	// LoginHint is passed to the IdP (OIDC login_hint, the mock's user).
	LoginHint string
	// Test runs a "test connection" login: claims and the provisioning
	// preview are shown, nothing is created, no session is started.
	Test bool
	// ForceLogin (prompt=login on the login URL) makes the IdP
	// authenticate the user again (connector.Flow.ForceLogin).
	ForceLogin bool
}

// promptLogin is the value of the login URL's prompt parameter that asks
// for a fresh authentication at the IdP (the OIDC provider sets it for an
// app's prompt=login or max_age).
const promptLogin = "login"

// LoginURL is the address that signs a browser in at tenant and then sends
// it to returnTo, a local path (for the OIDC provider: its authorize
// resume URL). base is the path part of the public URL ("" at the root).
func LoginURL(base, tenantSlug, returnTo string) string {
	u := base + "/t/" + url.PathEscape(tenantSlug) + "/login"
	if returnTo != "" {
		u += "?" + url.Values{"return_to": {returnTo}}.Encode()
	}
	return u
}

// ServeLogin answers r as the browser's GET of loginURL, a tenant's login
// address (/t/{tenant}/login?...) that the OpenID provider built, would be
// answered: the authorize endpoint hands its request over in place
// instead of redirecting the browser to the login (op.Config.Login), so
// the browser goes from the app's authorize request straight to the IdP.
// Anything but a tenant login address is a 404 page.
func (s *Server) ServeLogin(w http.ResponseWriter, r *http.Request, loginURL string) {
	u, err := url.Parse(loginURL)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasSuffix(u.Path, "/login") || !strings.HasPrefix(u.Path, s.basePath+"/t/") {
		s.fail(w, r, nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "There is no page at this address."))
		return
	}
	r2 := r.Clone(r.Context())
	r2.Method, r2.Body, r2.ContentLength = http.MethodGet, http.NoBody, 0
	r2.URL = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	r2.RequestURI = u.RequestURI()
	r2.Form, r2.PostForm = nil, nil
	s.ServeHTTP(w, r2)
}

// returnTo reads and checks the return_to parameter. An invalid one is
// refused outright rather than dropped, so a tampered link is noticed.
func returnTo(r *http.Request) (string, error) {
	rt := r.URL.Query().Get("return_to")
	if rt == "" || ValidReturnTo(rt) {
		return rt, nil
	}
	return "", &gatehouse.Error{Code: gatehouse.EINVALID, Field: "return_to", Reason: "invalid_return_to",
		Message: "The sign-in link has an invalid return address. Go back to the application and try again."}
}

func (s *Server) loginPath(t *gatehouse.Tenant) string {
	return s.basePath + "/t/" + url.PathEscape(t.Slug) + "/login"
}

func (s *Server) landingPath(t *gatehouse.Tenant) string {
	return s.basePath + "/t/" + url.PathEscape(t.Slug) + "/"
}

func (s *Server) connections(ctx context.Context, t *gatehouse.Tenant) ([]*gatehouse.Connection, error) {
	var cs []*gatehouse.Connection
	err := s.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		cs, err = tx.ListConnections(ctx, t.ID)
		return err
	})
	return cs, err
}

// handleTenantLogin: GET /t/{tenant}/login[?connection=][&login_hint=][&return_to=][&test=1][&prompt=login]
func (s *Server) handleTenantLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := s.tenant(ctx, r.PathValue("tenant"))
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	rt, err := returnTo(r)
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	q := r.URL.Query()
	hint := strings.TrimSpace(q.Get("login_hint"))
	if len(hint) > 320 {
		hint = ""
	}
	opts := LoginOptions{ReturnTo: rt, LoginHint: hint, Test: q.Get("test") == "1", ForceLogin: q.Get("prompt") == promptLogin}
	if opts.Test && !s.canTest(r, t) {
		s.fail(w, r, t, gatehouse.Errorf(gatehouse.EFORBIDDEN, "Only an administrator of %s, signed in, may test a connection.", t.Name))
		return
	}
	if id := q.Get("connection"); id != "" {
		// Through the catalog: a start with a connection changed on
		// another replica a moment ago cannot finish (see catalog).
		c, _, err := s.catalog.connection(ctx, id)
		if err == nil && c.TenantID != t.ID {
			err = gatehouse.Errorf(gatehouse.ENOTFOUND, "not found")
		}
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			err = gatehouse.Errorf(gatehouse.ENOTFOUND, "This sign-in method does not exist (any more) at %s.", t.Name)
		}
		if err != nil {
			s.fail(w, r, t, err, s.loginPath(t))
			return
		}
		s.StartLogin(w, r, t, c, opts)
		return
	}
	if opts.Test {
		s.fail(w, r, t, gatehouse.FieldError("connection", "Say which connection to test."))
		return
	}
	conns, err := s.connections(ctx, t)
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	cands := candidates(t, conns, hint)
	if len(cands) == 1 {
		s.StartLogin(w, r, t, cands[0], opts)
		return
	}
	s.chooser(w, r, t, cands, opts, "")
}

// candidates are the enabled connections fit for email (which may be
// empty). A connection whose JIT allowed_domains names the email's domain
// is preferred; else those whose policy admits the domain (the tenant's
// verified domains, or any domain); else every enabled connection.
func candidates(t *gatehouse.Tenant, conns []*gatehouse.Connection, email string) []*gatehouse.Connection {
	var enabled, named, admitted []*gatehouse.Connection
	domain := gatehouse.EmailDomain(email)
	for _, c := range conns {
		if !c.Enabled {
			continue
		}
		enabled = append(enabled, c)
		if domain == "" {
			continue
		}
		switch ad := c.JIT.AllowedDomains; {
		case ad != nil && slices.Contains(*ad, domain):
			named = append(named, c)
		case ad == nil && slices.Contains(t.Domains, domain), ad != nil && len(*ad) == 0:
			admitted = append(admitted, c)
		}
	}
	switch {
	case len(named) > 0:
		return named
	case len(admitted) > 0:
		return admitted
	}
	return enabled
}

func (s *Server) chooser(w http.ResponseWriter, r *http.Request, t *gatehouse.Tenant, conns []*gatehouse.Connection, opts LoginOptions, msg string) {
	p := &page{Title: "Sign in", Tenant: t, Action: s.loginPath(t), Email: opts.LoginHint, ReturnTo: opts.ReturnTo, Message: msg}
	if opts.ForceLogin {
		p.Prompt = promptLogin
	}
	for _, c := range conns {
		v := url.Values{"connection": {c.ID}}
		if opts.ReturnTo != "" {
			v.Set("return_to", opts.ReturnTo)
		}
		if opts.LoginHint != "" {
			v.Set("login_hint", opts.LoginHint)
		}
		if opts.ForceLogin {
			v.Set("prompt", promptLogin)
		}
		p.Connections = append(p.Connections, choice{Name: c.Name, URL: s.loginPath(t) + "?" + v.Encode()})
	}
	s.render(w, r, http.StatusOK, "chooser", p)
}

// handleSharedLogin: GET /login[?email=][&return_to=] — home-realm
// discovery: the email's domain names the tenant (a domain belongs to at
// most one tenant), then the tenant's connections are narrowed as on the
// tenant's own page.
func (s *Server) handleSharedLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rt, err := returnTo(r)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	q := r.URL.Query()
	email := strings.TrimSpace(q.Get("email"))
	if email == "" {
		email = strings.TrimSpace(q.Get("login_hint"))
	}
	p := &page{Title: "Sign in", Action: s.basePath + "/login", Email: email, ReturnTo: rt}
	if email == "" {
		s.render(w, r, http.StatusOK, "login", p)
		return
	}
	if !gatehouse.ValidEmail(email) {
		p.Message = "Enter a valid email address, such as name@example.com."
		s.render(w, r, http.StatusBadRequest, "login", p)
		return
	}
	domain := gatehouse.EmailDomain(email)
	var t *gatehouse.Tenant
	err = s.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		t, err = tx.GetTenantByDomain(ctx, domain)
		return err
	})
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		p.Message = "No organization here signs in people from " + domain + ". Check the address, or ask your IT administrator for your organization's sign-in link."
		s.render(w, r, http.StatusNotFound, "login", p)
		return
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	conns, err := s.connections(ctx, t)
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	opts := LoginOptions{ReturnTo: rt, LoginHint: email}
	cands := candidates(t, conns, email)
	if len(cands) == 1 {
		s.StartLogin(w, r, t, cands[0], opts)
		return
	}
	s.chooser(w, r, t, cands, opts, "")
}

// StartLogin begins a login through connection c of tenant t: it opens the
// connector, lets it fill a new flow (state, nonce, PKCE, request id),
// seals the flow into its cookie and sends the browser to the IdP. The
// console calls it for "test connection" after its own authorization.
func (s *Server) StartLogin(w http.ResponseWriter, r *http.Request, t *gatehouse.Tenant, c *gatehouse.Connection, opts LoginOptions) {
	ctx := r.Context()
	if c.TenantID != t.ID {
		s.fail(w, r, t, gatehouse.Errorf(gatehouse.ENOTFOUND, "This sign-in method does not exist at %s.", t.Name))
		return
	}
	if opts.ReturnTo != "" && !ValidReturnTo(opts.ReturnTo) {
		s.fail(w, r, t, gatehouse.Errorf(gatehouse.EINVALID, "The sign-in link has an invalid return address."))
		return
	}
	// A disabled connection may still be tested (set up before enabling).
	if !c.Enabled && !opts.Test {
		s.fail(w, r, t, &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Reason: "connection_disabled",
			Message: "This sign-in method is turned off."}, s.loginPath(t))
		return
	}
	conn, err := s.connector(ctx, c)
	if err != nil {
		s.fail(w, r, t, err)
		return
	}
	flow := &connector.Flow{
		ID: gatehouse.NewID("flw"), TenantID: t.ID, ConnectionID: c.ID,
		LoginHint: opts.LoginHint, ReturnTo: opts.ReturnTo, Test: opts.Test, ForceLogin: opts.ForceLogin,
		CreatedAt: s.clock.Now().UTC(),
	}
	act, err := conn.Begin(ctx, flow)
	if err != nil {
		s.fail(w, r, t, err, s.loginPath(t))
		return
	}
	if act.RedirectURL == "" && len(act.HTML) == 0 {
		s.fail(w, r, t, errEmptyAction)
		return
	}
	if err := s.sessions.SetFlow(w, flow, c.Type == gatehouse.ConnSAML); err != nil {
		s.fail(w, r, t, err)
		return
	}
	writeAction(w, act)
}

// found answers 302 Found to u, an absolute URL or a local path the
// caller built and checked. Unlike http.Redirect it neither parses u
// again nor writes the HTML note that RFC 9110 §15.4.3 says the answer
// "usually" carries and no browser shows: on a login's two redirects that
// was a few percent of its CPU.
func found(w http.ResponseWriter, u string) {
	w.Header().Set("Location", u)
	w.WriteHeader(http.StatusFound)
}

var errEmptyAction = &gatehouse.Error{Code: gatehouse.EINTERNAL, Message: "Internal error.", Err: errors.New("connector returned neither a redirect nor a page")}

// writeAction sends the browser on: a 302 redirect or the connector's page
// (a self-posting SAML form).
func writeAction(w http.ResponseWriter, act connector.Action) {
	w.Header().Set("Cache-Control", "no-store")
	if act.RedirectURL != "" {
		found(w, act.RedirectURL)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(act.HTML)
}
