package console_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
	"github.com/gatehouse-sso/gatehouse/console"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// client is a browser that does not follow redirects, so each answer can
// be checked.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	// header is added to every request (Sec-Fetch-Site in CSRF tests).
	header http.Header
}

func newClient(t *testing.T, base string, follow bool) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	if !follow {
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return &client{t: t, base: base, hc: hc, header: http.Header{}}
}

type answer struct {
	code     int
	body     string
	location string
	header   http.Header
}

func (c *client) do(method, path string, form url.Values) answer {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, body: string(b), location: resp.Header.Get("Location"), header: resp.Header}
}

func (c *client) get(path string) answer { return c.do("GET", path, nil) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the form token from a page.
func (c *client) csrf(path string) string {
	c.t.Helper()
	a := c.get(path)
	m := csrfRE.FindStringSubmatch(a.body)
	if m == nil {
		c.t.Fatalf("no csrf token on %s (%d): %.400s", path, a.code, a.body)
	}
	return m[1]
}

// post sends a form with the CSRF token read from page.
func (c *client) post(page, path string, form url.Values) answer {
	c.t.Helper()
	form.Set("csrf", c.csrf(page))
	return c.do("POST", path, form)
}

func want(t *testing.T, a answer, code int, contains ...string) {
	t.Helper()
	if a.code != code {
		t.Fatalf("status %d, want %d (location %q): %.1500s", a.code, code, a.location, a.body)
	}
	for _, s := range contains {
		if !strings.Contains(a.body, s) {
			t.Fatalf("answer lacks %q: %.3000s", s, a.body)
		}
	}
}

// operator starts an instance and signs its operator in.
func operator(t *testing.T) (*servertest.Instance, *client) { return operatorOn(t, "sqlite") }

func operatorOn(t *testing.T, engine string) (*servertest.Instance, *client) {
	gh := servertest.Start(t, servertest.Options{Dev: true, Engine: engine})
	c := newClient(t, gh.URL, false)
	a := c.post("/console/signin", "/console/signin", url.Values{"token": {servertest.AdminToken}})
	if a.code != http.StatusSeeOther || a.location != "/console/" {
		t.Fatalf("sign-in: %d %q %.500s", a.code, a.location, a.body)
	}
	return gh, c
}

// setupAcme creates tenant acme (domain acme.com, admin group Admins), the
// group Admins, and a mock connection whose new users land in Admins.
func setupAcme(t *testing.T, c *client) (connID string) {
	t.Helper()
	want(t, c.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"acme"}, "name": {"Acme"},
		"domains": {"acme.com"}, "admin_groups": {"Admins"}}), http.StatusSeeOther)
	want(t, c.post("/console/t/acme/groups", "/console/t/acme/groups", url.Values{"name": {"Admins"}}), http.StatusSeeOther)
	a := c.post("/console/t/acme/connections/new?type=mock", "/console/t/acme/connections", url.Values{"type": {"mock"}, "name": {"Mock IdP"},
		"users": {`[{"subject":"ana-1","email":"ana@acme.com","email_verified":true,"name":"Ana Lima"},{"subject":"bo-1","email":"bo@acme.com","email_verified":true,"name":"Bo"}]`}})
	want(t, a, http.StatusSeeOther)
	connID = strings.TrimSuffix(strings.TrimPrefix(a.location, "/console/t/acme/connections/"), "?m=created")
	return connID
}

func TestAuthRequiredOnEveryPage(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	c := newClient(t, gh.URL, false)
	patterns := append(console.RoutePatterns(), "GET /console/nowhere", "POST /console/t/acme/nowhere")
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		path = strings.NewReplacer("{tenant}", "acme", "{id}", "x", "{delivery}", "y", "{$}", "").Replace(path)
		var form url.Values
		if method == "POST" {
			form = url.Values{"confirm": {"yes"}}
		}
		a := c.do(method, path, form)
		if a.code != http.StatusSeeOther || a.location != "/console/signin" {
			t.Errorf("%s %s anonymous: %d %q, want 303 to /console/signin", method, path, a.code, a.location)
		}
	}
	// A forged or stale cookie is no session either.
	c.hc.Jar.SetCookies(mustURL(t, gh.URL+"/console/"), []*http.Cookie{{Name: console.CookieName, Value: "Zm9yZ2Vk", Path: "/console/"}})
	if a := c.get("/console/tenants"); a.code != http.StatusSeeOther {
		t.Errorf("forged cookie: %d", a.code)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestOperatorSignIn(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	c := newClient(t, gh.URL, false)
	want(t, c.get("/console/signin"), http.StatusOK, "Superuser token", "Sign in with your organization", `<label for="f-token">`)
	// Wrong token: refused, inline error, no session.
	a := c.post("/console/signin", "/console/signin", url.Values{"token": {"gh_su_wrong"}})
	want(t, a, http.StatusUnauthorized, "This is not the superuser token")
	if a.header.Get("Set-Cookie") != "" && strings.Contains(a.header.Get("Set-Cookie"), console.CookieName+"=") {
		t.Fatal("a session cookie was set for a wrong token")
	}
	// No sign-in form token: refused even with the right superuser token.
	want(t, c.do("POST", "/console/signin", url.Values{"token": {servertest.AdminToken}}), http.StatusForbidden)
	a = c.post("/console/signin", "/console/signin", url.Values{"token": {servertest.AdminToken}})
	want(t, a, http.StatusSeeOther)
	var ck *http.Cookie
	for _, k := range (&http.Response{Header: a.header}).Cookies() {
		if k.Name == console.CookieName {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/console/" {
		t.Fatalf("console cookie: %+v", ck)
	}
	// The empty console says what to do first (journey 1).
	want(t, c.get("/console/"), http.StatusOK, "Welcome to Gatehouse", "Create a tenant")
	// Sign-out is a CSRF-checked POST.
	want(t, c.do("POST", "/console/signout", url.Values{}), http.StatusForbidden)
	want(t, c.post("/console/", "/console/signout", url.Values{}), http.StatusSeeOther)
	if a := c.get("/console/tenants"); a.code != http.StatusSeeOther || a.location != "/console/signin" {
		t.Fatalf("after sign-out: %d %q", a.code, a.location)
	}
}

func TestCSRFRefused(t *testing.T) {
	gh, c := operator(t)
	form := func() url.Values { return url.Values{"slug": {"acme"}, "name": {"Acme"}} }
	// No token, a wrong token, another session's token: refused, nothing written.
	want(t, c.do("POST", "/console/tenants", form()), http.StatusForbidden, "out of date")
	bad := form()
	bad.Set("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	want(t, c.do("POST", "/console/tenants", bad), http.StatusForbidden)
	_, other := operator(t)
	stolen := form()
	stolen.Set("csrf", other.csrf("/console/tenants/new"))
	want(t, c.do("POST", "/console/tenants", stolen), http.StatusForbidden)
	// The right token from another site (the browser says so): refused by
	// the cross-origin check.
	cross := form()
	cross.Set("csrf", c.csrf("/console/tenants/new"))
	c.header.Set("Sec-Fetch-Site", "cross-site")
	want(t, c.do("POST", "/console/tenants", cross), http.StatusForbidden)
	c.header.Del("Sec-Fetch-Site")
	err := gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		_, err := tx.GetTenantBySlug(context.Background(), "acme")
		return err
	})
	if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		t.Fatalf("a refused form wrote anyway: %v", err)
	}
	want(t, c.post("/console/tenants/new", "/console/tenants", form()), http.StatusSeeOther)
}

func TestInlineValidation(t *testing.T) {
	_, c := operator(t)
	a := c.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"Not A Slug"}, "domains": {"acme.com"}})
	want(t, a, http.StatusUnprocessableEntity, `aria-invalid="true"`, `id="e-slug"`, "lower-case letters", `value="Not A Slug"`)
	want(t, c.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"acme"}, "domains": {"acme.com"}}), http.StatusSeeOther)
	// A domain belongs to one tenant only.
	a = c.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"acme2"}, "domains": {"ACME.com"}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-domains"`, "already belongs to another tenant")
	// JIT default groups must exist.
	connID := ""
	a = c.post("/console/t/acme/connections/new?type=mock", "/console/t/acme/connections", url.Values{"type": {"mock"}, "name": {""}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-name"`)
	a = c.post("/console/t/acme/connections/new?type=mock", "/console/t/acme/connections", url.Values{"type": {"mock"}, "name": {"M"}})
	want(t, a, http.StatusSeeOther)
	connID = strings.TrimSuffix(strings.TrimPrefix(a.location, "/console/t/acme/connections/"), "?m=created")
	page := "/console/t/acme/connections/" + connID
	a = c.post(page, page+"/jit", url.Values{"jit_enabled": {"on"}, "domains_mode": {"tenant"}, "default_groups": {"Nope"}})
	want(t, a, http.StatusUnprocessableEntity, "There is no group named", "Nope")
	a = c.post(page, page+"/mapping", url.Values{"expressions": {"email = claims.("}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-expressions"`)
}

func TestTenantAdminSeesOnlyTheirTenant(t *testing.T) {
	gh, op := operator(t)
	connID := setupAcme(t, op)
	page := "/console/t/acme/connections/" + connID
	want(t, op.post(page, page+"/jit", url.Values{"jit_enabled": {"on"}, "domains_mode": {"tenant"}, "default_groups": {"Admins"}, "update_profile": {"on"}}), http.StatusSeeOther)
	want(t, op.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"globex"}, "name": {"Globex"}}), http.StatusSeeOther)

	// Ana signs in through Acme's SSO from the console's sign-in page.
	ana := newClient(t, gh.URL, true)
	a := ana.get("/console/signin/org?org=" + url.QueryEscape("ana@acme.com"))
	// The chain from the IdP ends on a page that moves on by itself (a
	// same-site navigation, so the SameSite=Strict cookie goes along).
	want(t, a, http.StatusOK, `<meta http-equiv="refresh" content="0;url=/console/t/acme/">`)
	ana.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	want(t, ana.get("/console/t/acme/"), http.StatusOK, "Dashboard", "Acme")
	want(t, ana.get("/console/t/acme/users"), http.StatusOK, "ana@acme.com")
	// Another tenant does not exist for her, by slug or by id.
	var globex *gatehouse.Tenant
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		var err error
		globex, err = tx.GetTenantBySlug(context.Background(), "globex")
		return err
	})
	for _, p := range []string{"/console/t/globex/", "/console/t/globex/users", "/console/t/" + globex.ID + "/connections", "/console/tenants", "/console/t/acme/delete"} {
		if a := ana.get(p); a.code != http.StatusNotFound {
			t.Errorf("tenant admin GET %s: %d, want 404", p, a.code)
		}
	}
	a = ana.do("POST", "/console/t/globex/groups", url.Values{"name": {"x"}, "csrf": {ana.csrf("/console/t/acme/groups")}})
	want(t, a, http.StatusNotFound)
	// Domains are the operator's: a tenant admin's settings form cannot change them.
	want(t, ana.post("/console/t/acme/settings", "/console/t/acme/settings", url.Values{"name": {"Acme Inc"}, "domains": {"evil.com"}, "admin_groups": {"Admins"}}), http.StatusSeeOther)
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		acme, err := tx.GetTenantBySlug(context.Background(), "acme")
		if err != nil || acme.Name != "Acme Inc" || len(acme.Domains) != 1 || acme.Domains[0] != "acme.com" {
			t.Errorf("tenant after admin's update: %+v %v", acme, err)
		}
		return nil
	})

	// Bo is not in an admin group: signed in at Acme, but no console.
	want(t, op.post(page, page+"/jit", url.Values{"jit_enabled": {"on"}, "domains_mode": {"tenant"}}), http.StatusSeeOther)
	bo := newClient(t, gh.URL, true)
	want(t, bo.get("/console/signin/org?org="+url.QueryEscape("bo@acme.com")), http.StatusForbidden, "not one of its administrators")
	bo.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if a := bo.get("/console/t/acme/"); a.code != http.StatusSeeOther {
		t.Errorf("non-admin: %d", a.code)
	}

	// Deactivating Ana ends her console session at once.
	anaID := findUser(t, gh, "acme", "ana@acme.com").ID
	up := "/console/t/acme/users/" + anaID
	want(t, op.post(up+"/deactivate", up+"/deactivate", url.Values{"confirm": {"yes"}}), http.StatusSeeOther)
	if a := ana.get("/console/t/acme/users"); a.code != http.StatusSeeOther || a.location != "/console/signin" {
		t.Errorf("deactivated admin: %d %q", a.code, a.location)
	}
}

func findUser(t *testing.T, gh *servertest.Instance, slug, email string) *gatehouse.User {
	t.Helper()
	var u *gatehouse.User
	err := gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		ten, err := tx.GetTenantBySlug(context.Background(), slug)
		if err != nil {
			return err
		}
		u, err = tx.GetUserByEmail(context.Background(), ten.ID, email)
		return err
	})
	if err != nil {
		t.Fatalf("user %s: %v", email, err)
	}
	return u
}

func auditActions(t *testing.T, gh *servertest.Instance, slug, action string) int {
	t.Helper()
	n := 0
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		ten, err := tx.GetTenantBySlug(context.Background(), slug)
		if err != nil {
			t.Fatal(err)
		}
		evs, _, err := tx.ListAudit(context.Background(), ten.ID, gatehouse.AuditFilter{Action: action}, gatehouse.Page{Limit: 100})
		n = len(evs)
		return err
	})
	return n
}

func TestDestructiveActionsNeedConfirmation(t *testing.T) {
	gh, c := operator(t)
	setupAcme(t, c)
	var gid string
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		ten, _ := tx.GetTenantBySlug(context.Background(), "acme")
		g, err := tx.GetGroupByName(context.Background(), ten.ID, "Admins")
		gid = g.ID
		return err
	})
	del := "/console/t/acme/groups/" + gid + "/delete"
	// GET shows the question and changes nothing.
	want(t, c.get(del), http.StatusOK, "Delete the group Admins?", `name="confirm" value="yes"`, "Cancel")
	// A POST without the confirmation's answer changes nothing either.
	want(t, c.post(del, del, url.Values{}), http.StatusBadRequest, "needs a confirmation")
	if n := auditActions(t, gh, "acme", "group.deleted"); n != 0 {
		t.Fatalf("deleted without confirmation")
	}
	want(t, c.post(del, del, url.Values{"confirm": {"yes"}}), http.StatusSeeOther)
	if n := auditActions(t, gh, "acme", "group.deleted"); n != 1 {
		t.Fatalf("group.deleted events: %d", n)
	}
	want(t, c.get("/console/t/acme/groups/"+gid), http.StatusNotFound)
	// Every destructive route has a confirmation page.
	for _, p := range console.RoutePatterns() {
		if strings.HasPrefix(p, "POST ") && (strings.HasSuffix(p, "/delete") || strings.HasSuffix(p, "/revoke") || strings.HasSuffix(p, "/rotate") || strings.HasSuffix(p, "/deactivate")) {
			if !contains(console.RoutePatterns(), "GET "+strings.TrimPrefix(p, "POST ")) {
				t.Errorf("%s has no confirmation page", p)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestJourney walks journeys 1, 2 and 5 through the console with the mock
// IdP: tenant, connection, test connection (nothing created), JIT on, a
// just-in-time user, their groups, a SCIM token shown once, the audit log.
func TestJourney(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) { journey(t, engine) })
	}
}

func journey(t *testing.T, engine string) {
	gh, c := operatorOn(t, engine)
	want(t, c.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"acme"}, "name": {"Acme"}, "domains": {"acme.com"}}), http.StatusSeeOther)
	want(t, c.get("/console/t/acme/"), http.StatusOK, "What to do next", "Add connection", `<svg class="chart"`)
	want(t, c.post("/console/t/acme/groups", "/console/t/acme/groups", url.Values{"name": {"Everyone"}}), http.StatusSeeOther)
	want(t, c.post("/console/t/acme/groups", "/console/t/acme/groups", url.Values{"name": {"Engineering"}}), http.StatusSeeOther)
	want(t, c.get("/console/t/acme/connections/new"), http.StatusOK, "OpenID Connect", "SAML 2.0")
	want(t, c.get("/console/t/acme/connections/new?type=saml"), http.StatusOK, "IdP metadata URL", "metadata XML")
	a := c.post("/console/t/acme/connections/new?type=mock", "/console/t/acme/connections", url.Values{"type": {"mock"}, "name": {"Mock IdP"},
		"users": {`[{"subject":"ana-1","email":"ana@acme.com","email_verified":true,"name":"Ana Lima","groups":["eng"]}]`}})
	want(t, a, http.StatusSeeOther)
	page := strings.TrimSuffix(a.location, "?m=created")
	want(t, c.get(page), http.StatusOK, "Redirect URI", "/sso/mock/", "Test connection", "Just-in-time provisioning", "Attribute mapping")

	// Test connection: the web test page shows the claims and the preview;
	// nothing is created.
	tester := newClient(t, gh.URL, true)
	tester.hc.Jar = c.hc.Jar
	a = tester.get(strings.TrimPrefix(page, "") + "/test?login_hint=" + url.QueryEscape("ana@acme.com"))
	want(t, a, http.StatusOK, "ana@acme.com")
	if n := auditActions(t, gh, "acme", "user.jit_created"); n != 0 {
		t.Fatalf("test connection created a user")
	}

	want(t, c.post(page, page+"/jit", url.Values{"jit_enabled": {"on"}, "domains_mode": {"tenant"}, "default_groups": {"Everyone"},
		"update_profile": {"on"}, "group_sync_enabled": {"on"}, "group_sync_mapping": {"eng = Engineering"}}), http.StatusSeeOther)
	want(t, c.get(page), http.StatusOK, `value="Everyone" checked`, "eng = Engineering")

	// Ana's first sign-in creates her just in time.
	ana := servertest.Browser(t)
	resp, err := ana.Get(gh.URL + "/t/acme/login?login_hint=" + url.QueryEscape("ana@acme.com"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ana's login: %v %v", err, resp)
	}
	resp.Body.Close()

	want(t, c.get("/console/t/acme/users?source=jit&q=ana"), http.StatusOK, "ana@acme.com")
	want(t, c.get("/console/t/acme/users?source=scim"), http.StatusOK, "No users match")
	u := findUser(t, gh, "acme", "ana@acme.com")
	up := "/console/t/acme/users/" + u.ID
	want(t, c.get(up), http.StatusOK, "Everyone", "Engineering", "IdP sync", "JIT default", "Mock IdP")
	// Groups: add Everyone by hand (manual), keep the synced Engineering.
	var everyone string
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		g, err := tx.GetGroupByName(context.Background(), u.TenantID, "Everyone")
		everyone = g.ID
		return err
	})
	want(t, c.post(up, up+"/groups", url.Values{"group": {everyone}}), http.StatusSeeOther)
	want(t, c.get(up), http.StatusOK, ">manual<")
	if n := auditActions(t, gh, "acme", "group.member_added"); n != 1 {
		t.Fatalf("group.member_added: %d", n)
	}

	// SCIM token: shown once, on the page the POST redirects to; a reload
	// neither posts again nor shows it.
	a = c.post("/console/t/acme/scim", "/console/t/acme/scim", url.Values{"name": {"Okta"}})
	want(t, a, http.StatusSeeOther)
	a = c.get(a.location)
	want(t, a, http.StatusOK, "shown only once", "gh_scim_", "/scim/v2")
	tok := regexp.MustCompile(`gh_scim_[A-Za-z0-9_-]+`).FindString(a.body)
	if strings.Contains(c.get("/console/t/acme/scim?m=created").body, tok) {
		t.Fatal("the SCIM token is shown again")
	}
	var scimList struct{ Resources []any }
	if code := gh.APIWithToken(t, tok, "GET", "/scim/v2/Users", nil, &scimList); code != 200 || len(scimList.Resources) != 1 {
		t.Fatalf("the console's SCIM token at /scim/v2/Users: %d %+v", code, scimList)
	}

	// Apps: the client secret is shown once.
	a = c.post("/console/t/acme/apps", "/console/t/acme/apps", url.Values{"name": {"Wiki"}, "redirect_uris": {"https://wiki.acme.com/cb"}, "alg": {"RS256"}})
	want(t, a, http.StatusSeeOther)
	appPage := a.location
	want(t, c.get(appPage), http.StatusOK, "gh_cs_", "shown only once", gh.URL+"/t/acme")
	if b := c.get(appPage).body; strings.Contains(b, "gh_cs_") || !strings.Contains(b, "Wiki") {
		t.Fatal("the client secret is shown again")
	}
	// Rotating shows the new secret once too.
	rot := strings.TrimSuffix(appPage, "?m=created") + "/rotate"
	a = c.post(rot, rot, url.Values{"confirm": {"yes"}})
	want(t, a, http.StatusSeeOther)
	want(t, c.get(a.location), http.StatusOK, "gh_cs_")
	if strings.Contains(c.get(a.location).body, "gh_cs_") {
		t.Fatal("the rotated secret is shown again")
	}
	a = c.post("/console/t/acme/apps", "/console/t/acme/apps", url.Values{"name": {"Bad"}, "redirect_uris": {"javascript:alert(1)"}, "alg": {"RS256"}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-redirect_uris"`)

	// The audit log says the user was created just in time, and by whom
	// the console's changes were made.
	want(t, c.get("/console/t/acme/audit?action=user.jit_created"), http.StatusOK, "user.jit_created", u.ID)
	want(t, c.get("/console/t/acme/audit?action=group."), http.StatusOK, "group.member_added", "superuser")
	want(t, c.get("/console/t/acme/audit?since=yesterday"), http.StatusBadRequest)
	// The dashboard counts today's sign-in and creation.
	want(t, c.get("/console/t/acme/"), http.StatusOK, ": 1 sign-ins</title>", ": 1 created just in time</title>")
}

// TestSAMLWizard: pasted IdP metadata gives the ACS URL, entity ID and SP
// metadata to copy, and a certificate that expires soon is warned about on
// the connection, the list and the dashboard (journey 6).
func TestSAMLWizard(t *testing.T) {
	gh, c := operator(t)
	want(t, c.post("/console/tenants/new", "/console/tenants", url.Values{"slug": {"acme"}, "domains": {"acme.com"}}), http.StatusSeeOther)
	idp := samltest.New("https://idp.acme.test")
	idp.ExtraCerts = []*x509.Certificate{expiringCert(t, 5*24*time.Hour)}
	a := c.post("/console/t/acme/connections/new?type=saml", "/console/t/acme/connections", url.Values{"type": {"saml"}, "name": {"Okta"},
		"idp_metadata_xml": {"<not metadata"}})
	want(t, a, http.StatusUnprocessableEntity, `aria-invalid="true"`)
	a = c.post("/console/t/acme/connections/new?type=saml", "/console/t/acme/connections", url.Values{"type": {"saml"}, "name": {"Okta"},
		"idp_metadata_xml": {string(idp.Metadata())}})
	want(t, a, http.StatusSeeOther)
	page := strings.TrimSuffix(a.location, "?m=created")
	id := strings.TrimPrefix(page, "/console/t/acme/connections/")
	want(t, c.get(page), http.StatusOK, "ACS URL", gh.URL+"/sso/saml/"+id+"/acs", "SP entity ID", "Download SP metadata",
		gh.URL+"/sso/saml/"+id+"/metadata", "expires soon", "IdP signing certificates")
	want(t, c.get("/console/t/acme/connections"), http.StatusOK, "expires soon")
	want(t, c.get("/console/t/acme/"), http.StatusOK, "Okta: an identity provider signing certificate expires soon")
	resp, err := http.Get(gh.URL + "/sso/saml/" + id + "/metadata")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SP metadata: %v %v", err, resp)
	}
	resp.Body.Close()
}

// expiringCert is a self-signed certificate that expires after d.
func expiringCert(t *testing.T, d time.Duration) *x509.Certificate {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Old IdP key"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(d)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestApprovePending: a connection that requires approval leaves new users
// pending; the console lists and approves them.
func TestApprovePending(t *testing.T) {
	gh, c := operator(t)
	connID := setupAcme(t, c)
	page := "/console/t/acme/connections/" + connID
	want(t, c.post(page, page+"/jit", url.Values{"jit_enabled": {"on"}, "domains_mode": {"tenant"}, "require_approval": {"on"}}), http.StatusSeeOther)
	bo := servertest.Browser(t)
	resp, err := bo.Get(gh.URL + "/t/acme/login?login_hint=bo@acme.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want(t, c.get("/console/t/acme/users?status=pending"), http.StatusOK, "bo@acme.com")
	want(t, c.get("/console/t/acme/"), http.StatusOK, "pending approval")
	u := findUser(t, gh, "acme", "bo@acme.com")
	if u.Status != gatehouse.StatusPending {
		t.Fatalf("bo: %s", u.Status)
	}
	up := "/console/t/acme/users/" + u.ID
	want(t, c.post(up, up+"/approve", url.Values{}), http.StatusSeeOther)
	if u := findUser(t, gh, "acme", "bo@acme.com"); u.Status != gatehouse.StatusActive {
		t.Fatalf("after approval: %s", u.Status)
	}
	if n := auditActions(t, gh, "acme", "user.approved"); n != 1 {
		t.Fatalf("user.approved events: %d", n)
	}
	// Reactivation is not approval: a second approve is refused.
	a := c.post(up, up+"/approve", url.Values{})
	if a.code < 400 {
		t.Fatalf("second approval: %d", a.code)
	}
}

// TestConnectionSettings: the settings form re-runs the connector's
// validation and keeps what it does not send (a secret stays stored).
func TestConnectionSettings(t *testing.T) {
	gh, c := operator(t)
	connID := setupAcme(t, c)
	page := "/console/t/acme/connections/" + connID
	want(t, c.get("/console/t/acme/connections/new?type=oauth2"), http.StatusOK, "Authorization endpoint", "Subject claim path")
	want(t, c.post(page, page, url.Values{"name": {"Staging IdP"}, "users": {`[{"subject":"zoe","email":"zoe@acme.com"}]`}}), http.StatusSeeOther)
	a := c.get(page)
	want(t, a, http.StatusOK, "Staging IdP", "zoe@acme.com", `<span class="badge off">disabled</span>`)
	a = c.post(page, page, url.Values{"name": {"Staging IdP"}, "enabled": {"on"}, "users": {`not json`}})
	want(t, a, http.StatusUnprocessableEntity, `id="e-users"`)
	want(t, c.post(page, page+"/mapping", url.Values{"email": {"mail"}, "expressions": {"username = claims.email.split('@')[0]"}}), http.StatusSeeOther)
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) error {
		ten, _ := tx.GetTenantBySlug(context.Background(), "acme")
		cn, err := tx.GetConnection(context.Background(), ten.ID, connID)
		if err != nil || cn.Name != "Staging IdP" || cn.Enabled || cn.Mapping.Email != "mail" || cn.Mapping.Expressions["username"] == "" {
			t.Errorf("connection after the forms: %+v %v", cn, err)
		}
		return nil
	})
	if n := auditActions(t, gh, "acme", "connection.updated"); n != 2 {
		t.Errorf("connection.updated events: %d", n)
	}
}
