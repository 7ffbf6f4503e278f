package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/session"
)

// TestServeLoginInPlace: the OpenID provider's authorize endpoint hands a
// login over in place (ServeLogin): the answer is the one the browser's
// GET of the login address gets (the IdP's redirect and a flow cookie),
// and anything but a tenant's login address is a 404 page.
func TestServeLoginInPlace(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			acme := e.tenant("acme", "acme.com")
			conn := e.mockConn(acme, "Acme SSO")
			login := loginPath("acme", url.Values{"connection": {conn.ID}, "login_hint": {"ana@acme.com"}, "return_to": {"/t/acme/authorize/resume?ar=x"}})
			serve := func(u string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				e.web.ServeLogin(w, httptest.NewRequest(http.MethodGet, e.srv.URL+"/t/acme/authorize?client_id=c", nil), u)
				return w
			}
			w := serve(login)
			direct := e.browser().get(login)
			if w.Code != http.StatusFound || direct.StatusCode != http.StatusFound {
				t.Fatalf("in place %d, direct %d", w.Code, direct.StatusCode)
			}
			in, _ := url.Parse(w.Header().Get("Location"))
			out, _ := url.Parse(direct.Header.Get("Location"))
			if in == nil || out == nil || in.Path != out.Path || in.Query().Get("user") != out.Query().Get("user") {
				t.Fatalf("in place %v, direct %v", in, out)
			}
			var flow *http.Cookie
			for _, c := range w.Result().Cookies() {
				if strings.HasPrefix(c.Name, session.FlowCookiePrefix) {
					flow = c
				}
			}
			if flow == nil || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("no flow cookie or cacheable: %v", w.Header())
			}
			for _, bad := range []string{
				"https://evil.example/t/acme/login", "//evil.example/t/acme/login", "/t/acme/logout", "/console",
				"/login?email=ana@acme.com", "/t/acme/", "%zz",
			} {
				if w := serve(bad); w.Code != http.StatusNotFound || w.Header().Get("Location") != "" {
					t.Errorf("%q: %d %s", bad, w.Code, w.Header().Get("Location"))
				}
			}
		})
	}
}

// TestOnLoginTx: the hook runs in the login's own transaction, after the
// session is written; its URL is where the browser goes, its page (the
// OpenID provider's form_post) is written once the login has committed,
// and its error fails the login with nothing of it committed (no user, no
// session).
func TestOnLoginTx(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			acme := e.tenant("acme", "acme.com")
			conn := e.mockConn(acme, "Acme SSO")
			var fail error
			var seen LoginEvent
			srv, _ := e.replica(func(c *Config) {
				c.OnLoginTx = func(ctx context.Context, tx gatehouse.Tx, r *http.Request, ev LoginEvent) (LoginAnswer, error) {
					// The session is already in tx.
					if _, err := tx.GetSession(ctx, ev.Session.ID); err != nil {
						return LoginAnswer{}, err
					}
					seen = ev
					if fail != nil {
						return LoginAnswer{}, fail
					}
					if strings.HasPrefix(ev.ReturnTo, "/app") {
						return LoginAnswer{Redirect: "https://app.example/cb?code=c1"}, nil
					}
					if strings.HasPrefix(ev.ReturnTo, "/posted") {
						sess := ev.Session
						return LoginAnswer{Page: func(w http.ResponseWriter, r *http.Request) {
							// Written after the commit: the session is
							// there for everyone.
							err := e.store.View(r.Context(), func(tx gatehouse.Tx) error {
								_, err := tx.GetSession(r.Context(), sess.ID)
								return err
							})
							if err != nil {
								http.Error(w, "page written before the commit: "+err.Error(), http.StatusInternalServerError)
								return
							}
							_, _ = io.WriteString(w, "the page that posts the code")
						}}, nil
					}
					return LoginAnswer{}, nil
				}
			})
			// follow stops at another site (the app).
			follow := func(u string) *result {
				b := e.browser(srv)
				r := b.get(u)
				for i := 0; i < 10 && r.StatusCode/100 == 3 && !strings.HasPrefix(r.Header.Get("Location"), "https://app.example"); i++ {
					next, _ := r.Request.URL.Parse(r.Header.Get("Location"))
					r = b.get(next.String())
				}
				return r
			}
			r := follow(loginPath("acme", url.Values{"connection": {conn.ID}, "login_hint": {"ana@acme.com"}, "return_to": {"/app/x"}}))
			if loc := r.Header.Get("Location"); r.StatusCode != http.StatusFound || loc != "https://app.example/cb?code=c1" || seen.User == nil || seen.User.Email != "ana@acme.com" {
				t.Fatalf("hook's redirect: %d %q %+v", r.StatusCode, loc, seen)
			}
			if setCookie(r.Response, session.CookieName) == nil {
				t.Fatal("no session cookie with the hook's redirect")
			}
			// A page from the hook: written after the commit, with the
			// session cookie.
			r = follow(loginPath("acme", url.Values{"connection": {conn.ID}, "login_hint": {"ana@acme.com"}, "return_to": {"/posted/x"}}))
			wantStatus(t, r, 200, "the page that posts the code")
			if setCookie(r.Response, session.CookieName) == nil {
				t.Fatal("no session cookie with the hook's page")
			}
			// Without a URL from the hook: the return address.
			r = follow(loginPath("acme", url.Values{"connection": {conn.ID}, "login_hint": {"bo@acme.com"}, "return_to": {"/t/acme/"}}))
			wantStatus(t, r, 200, "bo@acme.com")
			// A failing hook fails the login: no user, no session.
			fail = errors.New("hook failed")
			users := e.countUsers(acme)
			r = follow(loginPath("acme", url.Values{"connection": {conn.ID}, "login_hint": {"newbie@acme.com"}, "return_to": {"/app/y"}}))
			if r.StatusCode != http.StatusInternalServerError || setCookie(r.Response, session.CookieName) != nil {
				t.Fatalf("failing hook: %d %s", r.StatusCode, r.Body)
			}
			if e.countUsers(acme) != users {
				t.Fatal("a failed login created its user")
			}
		})
	}
}
