package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// toCallback drives browser b from the app's authorize URL through the
// login served in place and the mock IdP, and returns the connection's
// callback URL without following it (the IdP's answer, in hand).
func toCallback(t *testing.T, b *http.Client, authURL string) string {
	t.Helper()
	stop := *b
	stop.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	next := authURL
	for i := 0; i < 10; i++ {
		resp, err := stop.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("%s: %d %s", next, resp.StatusCode, body)
		}
		if strings.HasSuffix(loc.Path, "/callback") && strings.HasPrefix(loc.Path, "/sso/") {
			return loc.String()
		}
		next = loc.String()
	}
	t.Fatal("no callback")
	return ""
}

// answer follows u in browser b until it leaves Gatehouse, and returns the
// last response's status, the app's redirect (if it got there) and body.
func answer(t *testing.T, b *http.Client, u, redirect string) (int, string, string) {
	t.Helper()
	var app string
	c := *b
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			app = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, app, string(body)
}

// TestAttackBrokeredCallback: the IdP's answer is the login that issues
// the app's code (op.AnswerLogin in the login's transaction), so the
// callback is where the code is won. Replayed in the same browser or
// carried to another one (no flow cookie: login CSRF), it gives no second
// code and never reaches the app; a callback whose app lost the request's
// redirect URI meanwhile ends on a page (RFC 6749 section 3.1.2), and the
// app's other requests still work. Full server, SQLite and PostgreSQL.
func TestAttackBrokeredCallback(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			gh, a, _, conf := wikiClient(t, ctx, engine, "openid")
			redirect := conf.RedirectURL
			authURL := func(verifier string) string {
				return conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "ana@acme.com"))
			}

			// The genuine callback answers once.
			b := servertest.Browser(t)
			verifier := oauth2.GenerateVerifier()
			cb := toCallback(t, b, authURL(verifier))
			status, app, body := answer(t, b, cb, redirect)
			au, _ := url.Parse(app)
			if au == nil || au.Query().Get("code") == "" || au.Query().Get("state") != "st" {
				t.Fatalf("callback: %d %q %.300s", status, app, body)
			}
			if _, err := conf.Exchange(ctx, au.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
				t.Fatal(err)
			}
			for name, br := range map[string]*http.Client{"same browser": b, "another browser": servertest.Browser(t)} {
				status, app, body := answer(t, br, cb, redirect)
				if app != "" || status < 400 || !strings.Contains(body, "<html") {
					t.Errorf("callback replayed in %s: %d %q %.300s", name, status, app, body)
				}
			}

			// A callback for a request whose redirect URI the admin removed
			// while the user was at the IdP.
			b = servertest.Browser(t)
			cb = toCallback(t, b, authURL(oauth2.GenerateVerifier()))
			if code := gh.API(t, "PATCH", "/api/v1/tenants/acme/apps/"+a.ID, map[string]any{"redirect_uris": []string{"https://wiki.acme.com/new"}}, nil); code != 200 {
				t.Fatalf("update app: %d", code)
			}
			status, app, body = answer(t, b, cb, redirect)
			if app != "" || status != http.StatusBadRequest || !strings.Contains(body, "not registered") {
				t.Fatalf("callback after the redirect URI's removal: %d %q %.300s", status, app, body)
			}
			// The new redirect URI works, with the session that login made.
			conf.RedirectURL = "https://wiki.acme.com/new"
			status, app, body = answer(t, b, authURL(oauth2.GenerateVerifier()), conf.RedirectURL)
			if au, _ := url.Parse(app); au == nil || au.Query().Get("code") == "" {
				t.Fatalf("the app's new redirect URI: %d %q %.300s", status, app, body)
			}
		})
	}
}
