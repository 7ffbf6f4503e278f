package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/session"
)

// TestLogin runs the browser journeys end to end over HTTP, with the mock
// connector, the real provisioning and the real store, on each engine.
func TestLogin(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			acme := e.tenant("acme", "acme.com")
			conn := e.mockConn(acme, "Acme SSO")
			hint := func(email string, extra ...string) string {
				q := url.Values{"login_hint": {email}}
				for i := 0; i+1 < len(extra); i += 2 {
					q.Set(extra[i], extra[i+1])
				}
				return loginPath("acme", q)
			}

			t.Run("first login creates the user, second reuses it", func(t *testing.T) {
				b := e.browser()
				r := b.follow(hint("ana@acme.com"))
				wantStatus(t, r, 200, "ana@acme.com", "Acme", "Sign out")
				u := e.user(acme, "ana@acme.com")
				if u.Source != gatehouse.SourceJIT || u.Status != gatehouse.StatusActive || u.DisplayName != "Ana Lima" {
					t.Fatalf("user %+v", u)
				}
				if r.Request.URL.Path != "/t/acme/" {
					t.Errorf("landed on %s", r.Request.URL)
				}
				n := e.countUsers(acme)
				r = e.browser().follow(hint("ana@acme.com"))
				wantStatus(t, r, 200, "ana@acme.com")
				if e.countUsers(acme) != n || e.user(acme, "ana@acme.com").ID != u.ID {
					t.Fatal("second login did not reuse the user")
				}
			})

			t.Run("replayed callback is refused, also on another replica", func(t *testing.T) {
				srv2, _ := e.replica()
				b := e.browser()
				r := b.get(hint("bo@acme.com"))
				if r.StatusCode != http.StatusFound {
					t.Fatalf("login start: %d %s", r.StatusCode, r.Body)
				}
				cb := r.Header.Get("Location")
				flow := r.Cookies()[0]
				// The login started on replica 1 finishes on replica 2.
				cb2 := strings.Replace(cb, e.srv.URL, srv2.URL, 1)
				first := replay(t, b, cb2, flow)
				if first.StatusCode != http.StatusFound || setCookie(first.Response, session.CookieName) == nil {
					t.Fatalf("cross-replica finish: %d %s", first.StatusCode, first.Body)
				}
				for name, u := range map[string]string{"same replica": cb2, "other replica": cb} {
					again := replay(t, b, u, flow)
					wantStatus(t, again, 400, "already used")
					if setCookie(again.Response, session.CookieName) != nil {
						t.Errorf("%s: replay set a session cookie", name)
					}
				}
				n := 0
				for _, ev := range e.audit(acme, "login.failed") {
					if ev.Details["reason"] == "flow_replayed" && ev.TargetID == conn.ID {
						n++
					}
				}
				if n < 2 {
					t.Errorf("replays audited %d times, want 2", n)
				}
			})

			t.Run("concurrent replays across replicas: exactly one wins", func(t *testing.T) {
				srv2, _ := e.replica()
				r := e.browser().get(hint("ana@acme.com"))
				cb, flow := r.Header.Get("Location"), r.Cookies()[0]
				const n = 16
				codes := make(chan int, n)
				var wg sync.WaitGroup
				for i := range n {
					u := cb
					if i%2 == 1 {
						u = strings.Replace(cb, e.srv.URL, srv2.URL, 1)
					}
					wg.Go(func() {
						req, _ := http.NewRequest("GET", u, nil)
						req.AddCookie(&http.Cookie{Name: flow.Name, Value: flow.Value})
						res, err := http.DefaultTransport.RoundTrip(req)
						if err != nil {
							codes <- 0
							return
						}
						res.Body.Close()
						codes <- res.StatusCode
					})
				}
				wg.Wait()
				close(codes)
				won := 0
				for c := range codes {
					switch c {
					case http.StatusFound:
						won++
					case http.StatusBadRequest:
					default:
						t.Errorf("status %d", c)
					}
				}
				if won != 1 {
					t.Fatalf("%d of %d concurrent replays signed in", won, n)
				}
			})

			t.Run("flow cookie from another browser is refused", func(t *testing.T) {
				victim, attacker := e.browser(), e.browser()
				r := victim.get(hint("bo@acme.com"))
				cb := r.Header.Get("Location")
				// The attacker has a flow of its own, and no flow at all.
				attacker.get(hint("bo@acme.com"))
				wantStatus(t, attacker.get(cb), 400, "not started in this browser")
				wantStatus(t, e.browser().get(cb), 400, "not started in this browser")
				// The victim's flow was not spent by those attempts.
				wantStatus(t, victim.follow(cb), 200, "bo@acme.com")
			})

			t.Run("expired flow is refused", func(t *testing.T) {
				b := e.browser()
				r := b.get(hint("bo@acme.com"))
				cb, flow := r.Header.Get("Location"), r.Cookies()[0]
				e.clock.Advance(session.FlowTTL + time.Second)
				defer e.clock.Advance(-session.FlowTTL - time.Second)
				// The cookie jar honours Max-Age with the wall clock, so
				// send the cookie by hand: the server's own check refuses.
				res := replay(t, b, cb, flow)
				wantStatus(t, res, 400, "expired")
			})

			t.Run("two logins in progress in one browser", func(t *testing.T) {
				b := e.browser()
				cb1 := b.get(hint("ana@acme.com")).Header.Get("Location")
				cb2 := b.get(hint("bo@acme.com")).Header.Get("Location")
				wantStatus(t, b.follow(cb1), 200, "ana@acme.com")
				wantStatus(t, b.follow(cb2), 200, "bo@acme.com")
			})

			t.Run("open redirects are refused", func(t *testing.T) {
				for _, rt := range []string{"//evil.com", "https://evil.com", `/\evil.com`, "/\t/evil.com", "/%2F%2Fevil.com", "/%5Cevil.com", "javascript:alert(1)", "evil.com"} {
					r := e.browser().get(hint("ana@acme.com", "return_to", rt))
					wantStatus(t, r, 400, "invalid return address")
					if loc := r.Header.Get("Location"); loc != "" {
						t.Errorf("%q redirected to %s", rt, loc)
					}
				}
				// Percent-encoded in the raw query: decoded once to "//evil.com".
				r := e.browser().get("/t/acme/login?login_hint=ana%40acme.com&return_to=%2F%2Fevil.com")
				wantStatus(t, r, 400)
				for _, p := range []string{"/login?email=ana%40acme.com&return_to=%2F%2Fevil.com", "/login?email=ana%40acme.com&return_to=https%3A%2F%2Fevil.com"} {
					wantStatus(t, e.browser().get(p), 400)
				}
				// A local path is honoured.
				r = e.browser().follow(hint("ana@acme.com", "return_to", "/t/acme/?from=app"))
				if r.Request.URL.RequestURI() != "/t/acme/?from=app" {
					t.Errorf("returned to %s", r.Request.URL)
				}
			})

			t.Run("refusal page", func(t *testing.T) {
				b := e.browser()
				r := b.get(hint("eve@evil.example"))
				cb := r.Header.Get("Location")
				res := b.get(cb, "X-Request-Id", "req-refusal-1")
				wantStatus(t, res, 403, "it@acme.example", "Reference", "req-refusal-1", "does not allow")
				if setCookie(res.Response, session.CookieName) != nil {
					t.Error("refusal set a session cookie")
				}
				for _, c := range res.Cookies() {
					if c.MaxAge >= 0 {
						t.Errorf("refusal set cookie %s", c.Name)
					}
				}
				if _, err := e.lookupUser(acme, "eve@evil.example"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("refused user exists: %v", err)
				}
				found := false
				for _, ev := range e.audit(acme, "login.refused") {
					found = found || (ev.RequestID == "req-refusal-1" && ev.Details["reason"] == "domain_not_allowed")
				}
				if !found {
					t.Error("no login.refused audit event with the page's reference")
				}
			})

			t.Run("IdP error answer", func(t *testing.T) {
				b := e.browser()
				r := b.get(loginPath("acme", nil)) // no hint: the mock shows its user list
				wantStatus(t, r, 200, "Mock identity provider")
				deny := regexp.MustCompile(`href="([^"]*error=access_denied[^"]*)"`).FindStringSubmatch(r.Body)
				if deny == nil {
					t.Fatal(r.Body)
				}
				res := b.get(htmlUnescape(deny[1]))
				wantStatus(t, res, 403, "access was denied", "it@acme.example")
			})

			t.Run("deactivated user's session ends at once", func(t *testing.T) {
				b := e.browser()
				wantStatus(t, b.follow(hint("bo@acme.com")), 200, "bo@acme.com")
				tok := b.cookie("/", session.CookieName).Value
				u := e.user(acme, "bo@acme.com")
				u.Status = gatehouse.StatusDeactivated
				e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.UpdateUser(ctx, u) })
				wantStatus(t, b.get("/t/acme/"), 200, "You are not signed in")
				if _, err := e.session(tok); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("session of deactivated user kept: %v", err)
				}
				// And no new session either: provisioning refuses.
				wantStatus(t, b.follow(hint("bo@acme.com")), 403)
				u.Status = gatehouse.StatusActive
				e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.UpdateUser(ctx, u) })
			})

			t.Run("logout", func(t *testing.T) {
				b := e.browser()
				wantStatus(t, b.follow(hint("ana@acme.com")), 200, "ana@acme.com")
				tok := b.cookie("/", session.CookieName).Value
				wantStatus(t, b.get("/t/acme/logout"), 200, `method="post"`)
				if _, err := e.session(tok); err != nil {
					t.Fatal("GET signed out")
				}
				// A cross-site form post is refused (CSRF).
				wantStatus(t, b.post("/t/acme/logout", nil, "Sec-Fetch-Site", "cross-site"), 403)
				if _, err := e.session(tok); err != nil {
					t.Fatal("cross-site POST signed out")
				}
				r := b.post("/t/acme/logout", nil)
				wantStatus(t, r, 200, "You are signed out")
				if c := setCookie(r.Response, session.CookieName); c == nil || c.MaxAge >= 0 {
					t.Errorf("cookie not cleared: %+v", c)
				}
				if _, err := e.session(tok); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("session kept after logout: %v", err)
				}
				wantStatus(t, b.get("/t/acme/"), 200, "You are not signed in")
			})

			t.Run("chooser with two connections", func(t *testing.T) {
				globex := e.tenant("globex", "globex.com")
				e.mockConn(globex, "Globex Okta")
				e.mockConn(globex, "Contractors", "contractor.io")
				b := e.browser()
				r := b.get(loginPath("globex", nil))
				wantStatus(t, r, 200, "Globex Okta", "Contractors", `name="login_hint"`)
				links := regexp.MustCompile(`href="(/t/globex/login\?connection=[^"]+)"`).FindAllStringSubmatch(r.Body, -1)
				if len(links) != 2 {
					t.Fatalf("links %v", links)
				}
				pick := b.get(htmlUnescape(links[0][1]))
				wantStatus(t, pick, 200, "Mock identity provider")
				user := regexp.MustCompile(`href="([^"]*user=dee-sub[^"]*)"`).FindStringSubmatch(pick.Body)
				wantStatus(t, b.follow(htmlUnescape(user[1])), 200, "dee@globex.com", "Globex")

				// A domain named in a connection's allowed_domains routes there.
				r = e.browser().get(loginPath("globex", url.Values{"login_hint": {"cy@contractor.io"}}))
				if r.StatusCode != http.StatusFound || !strings.Contains(r.Header.Get("Location"), "user=cy-sub") {
					t.Fatalf("contractor routing: %d %s", r.StatusCode, r.Header.Get("Location"))
				}
				// The tenant's own domain fits both (the contractor connection
				// lists only its domain): the first one, by policy.
				r = e.browser().get(loginPath("globex", url.Values{"login_hint": {"dee@globex.com"}}))
				if r.StatusCode != http.StatusFound {
					t.Fatalf("tenant domain routing: %d %s", r.StatusCode, r.Body)
				}
			})

			t.Run("home-realm discovery by email domain", func(t *testing.T) {
				b := e.browser()
				wantStatus(t, b.get("/login"), 200, `name="email"`, "<label")
				r := b.follow("/login?email=" + url.QueryEscape("ana@acme.com"))
				wantStatus(t, r, 200, "ana@acme.com", "Acme")
				wantStatus(t, e.browser().get("/login?email=x%40nowhere.example"), 404, "nowhere.example")
				wantStatus(t, e.browser().get("/login?email=not-an-email"), 400, "valid email")
			})

			t.Run("test connection", func(t *testing.T) {
				test := loginPath("acme", url.Values{"connection": {conn.ID}, "test": {"1"}, "login_hint": {"cy@contractor.io"}})
				// Anyone not signed in as a tenant admin is refused.
				wantStatus(t, e.browser().get(test), 403)
				admin := e.browser()
				wantStatus(t, admin.follow(hint("ana@acme.com")), 200)
				ana := e.user(acme, "ana@acme.com")
				e.update(func(ctx context.Context, tx gatehouse.Tx) error {
					g := &gatehouse.Group{TenantID: acme.ID, Name: "Admins", Source: gatehouse.SourceAdmin}
					if err := tx.CreateGroup(ctx, g); err != nil {
						return err
					}
					return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: acme.ID, GroupID: g.ID, UserID: ana.ID, ManagedBy: gatehouse.ManagedByAdmin})
				})
				r := admin.follow(test)
				wantStatus(t, r, 200, "Test sign-in", "Nothing was created", "cy@contractor.io", "domain_not_allowed")
				ok := admin.follow(loginPath("acme", url.Values{"connection": {conn.ID}, "test": {"1"}, "login_hint": {"newbie@acme.com"}}))
				if ok.StatusCode != 200 || strings.Contains(ok.Body, "refused") || !strings.Contains(ok.Body, "created") {
					t.Fatalf("dry run: %d\n%s", ok.StatusCode, ok.Body)
				}
				if _, err := e.lookupUser(acme, "newbie@acme.com"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("test login created a user: %v", err)
				}
				// The admin is still signed in as themselves.
				wantStatus(t, admin.get("/t/acme/"), 200, "ana@acme.com")
			})

			t.Run("unknown tenant and connection", func(t *testing.T) {
				wantStatus(t, e.browser().get("/t/nope/login"), 404, "nope")
				wantStatus(t, e.browser().get("/t/acme/login?connection=con_nope"), 404)
				wantStatus(t, e.browser().get("/sso/mock/con_nope/callback?state=x"), 404)
				wantStatus(t, e.browser().get("/sso/oidc/"+conn.ID+"/callback?state=x"), 404)
			})

			t.Run("disabled connection", func(t *testing.T) {
				solo := e.tenant("solo", "solo.example")
				c := e.mockConn(solo, "Off")
				c.Enabled = false
				e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.UpdateConnection(ctx, c) })
				wantStatus(t, e.browser().get("/t/solo/login?connection="+c.ID), 403, "turned off")
				wantStatus(t, e.browser().get("/t/solo/login"), 200, "No sign-in method")
			})
		})
	}
}

// replay requests u carrying flow by hand, like a captured request.
func replay(t *testing.T, b *browser, u string, flow *http.Cookie) *result {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.AddCookie(&http.Cookie{Name: flow.Name, Value: flow.Value})
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return &result{Response: res, Body: sb.String(), Via: []string{u}}
}

func htmlUnescape(s string) string { return strings.ReplaceAll(s, "&amp;", "&") }

func (e *env) lookupUser(t *gatehouse.Tenant, email string) (*gatehouse.User, error) {
	var u *gatehouse.User
	err := e.store.View(context.Background(), func(tx gatehouse.Tx) (err error) {
		u, err = tx.GetUserByEmail(context.Background(), t.ID, email)
		return err
	})
	return u, err
}

func (e *env) session(token string) (*gatehouse.Session, error) {
	var s *gatehouse.Session
	err := e.store.View(context.Background(), func(tx gatehouse.Tx) (err error) {
		s, err = tx.GetSession(context.Background(), secret.DigestString(token))
		return err
	})
	return s, err
}
