package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/session"
)

func TestValidReturnTo(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"/", true},
		{"/t/acme/", true},
		{"/t/acme/authorize/resume?id=abc&x=%2F", true},
		{"/path#frag", true},
		{"", false},
		{"//evil.com", false},
		{"///evil.com", false},
		{`/\evil.com`, false},
		{`\\evil.com`, false},
		{"https://evil.com", false},
		{"http:/evil.com", false},
		{"javascript:alert(1)", false},
		{"evil.com", false},
		{"/%2F%2Fevil.com", false},
		{"/%2f%2fevil.com", false},
		{"/%5Cevil.com", false},
		{"/\t/evil.com", false},
		{"/\n/evil.com", false},
		{"/ /evil.com", false},
		{"/a\\b", false},
		{"/%0A", false},
		{"/%zz", false},
		{"/" + strings.Repeat("a", maxReturnTo), false},
	} {
		if got := ValidReturnTo(tc.in); got != tc.ok {
			t.Errorf("ValidReturnTo(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

// TestCookieFlags drives a handler whose public URL is https (behind a TLS
// proxy) and one on plain http, checking every cookie set along a login.
func TestCookieFlags(t *testing.T) {
	e := newEnv(t, testdb.Engines[0])
	acme := e.tenant("acme", "acme.com")
	e.mockConn(acme, "Acme SSO")
	for _, tc := range []struct {
		publicURL string
		secure    bool
	}{{"https://sso.example.com", true}, {"http://localhost:8080", false}} {
		t.Run(tc.publicURL, func(t *testing.T) {
			h, err := New(Config{Store: e.store, Keyring: e.keyring, PublicURL: tc.publicURL, Dev: true,
				Logger: quietLogger(), Clock: e.clock,
				Resolver: provision.New(e.store, provision.Options{Clock: e.clock, Logger: quietLogger()})})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.publicURL+"/t/acme/login?login_hint=ana%40acme.com", nil))
			if rec.Code != http.StatusFound {
				t.Fatalf("start: %d %s", rec.Code, rec.Body)
			}
			flows := rec.Result().Cookies()
			if len(flows) != 1 {
				t.Fatalf("cookies %v", flows)
			}
			f := flows[0]
			if !strings.HasPrefix(f.Name, session.FlowCookiePrefix) || !f.HttpOnly || f.Secure != tc.secure ||
				f.SameSite != http.SameSiteLaxMode || f.Path != "/sso/" || f.MaxAge != 600 {
				t.Errorf("flow cookie %+v", f)
			}
			cb, _ := url.Parse(rec.Header().Get("Location"))
			req := httptest.NewRequest("GET", cb.String(), nil)
			req.AddCookie(&http.Cookie{Name: f.Name, Value: f.Value})
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/t/acme/" {
				t.Fatalf("callback: %d %s %s", rec.Code, rec.Header().Get("Location"), rec.Body)
			}
			var sess, cleared *http.Cookie
			for _, c := range rec.Result().Cookies() {
				switch c.Name {
				case session.CookieName:
					sess = c
				case f.Name:
					cleared = c
				default:
					t.Errorf("unexpected cookie %s", c.Name)
				}
			}
			if sess == nil || !sess.HttpOnly || sess.Secure != tc.secure || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.MaxAge != 0 {
				t.Errorf("session cookie %+v", sess)
			}
			if cleared == nil || cleared.MaxAge >= 0 {
				t.Errorf("flow cookie not cleared: %+v", cleared)
			}
		})
	}
}

// TestSAMLFlowCookieIsCrossSite: a SAML flow's cookie must survive the
// IdP's cross-site POST to the ACS: SameSite=None; Secure on https.
func TestSAMLFlowCookieIsCrossSite(t *testing.T) {
	e := newEnv(t, testdb.Engines[0])
	acme := e.tenant("acme", "acme.com")
	c := e.mockConn(acme, "Acme SSO")
	for _, tc := range []struct {
		publicURL string
		sameSite  http.SameSite
	}{{"https://sso.example.com", http.SameSiteNoneMode}, {"http://localhost:8080", http.SameSiteLaxMode}} {
		m, err := session.New(session.Config{Store: e.store, Keyring: e.keyring, PublicURL: tc.publicURL, Clock: e.clock})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewServer(Config{Store: e.store, Keyring: e.keyring, PublicURL: tc.publicURL, Dev: true,
			Logger: quietLogger(), Clock: e.clock, Sessions: m,
			Resolver: provision.New(e.store, provision.Options{Clock: e.clock})})
		if err != nil {
			t.Fatal(err)
		}
		saml := *c
		saml.Type = gatehouse.ConnSAML // the cookie policy follows the connection type
		// Prime the connector cache with the mock for this (id, updated_at),
		// so the "SAML" connection runs the mock's Begin.
		if _, err := s.connector(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.StartLogin(rec, httptest.NewRequest("GET", "/t/acme/login", nil), acme, &saml, LoginOptions{LoginHint: "ana@acme.com"})
		cs := rec.Result().Cookies()
		if rec.Code != http.StatusFound || len(cs) != 1 || cs[0].SameSite != tc.sameSite || !cs[0].HttpOnly {
			t.Errorf("%s: %d %+v", tc.publicURL, rec.Code, cs)
		}
	}
}

// FuzzValidReturnTo: whatever ValidReturnTo accepts stays on our host,
// resolved as is or after one more round of percent-decoding (a proxy or
// framework that decodes before redirecting again).
func FuzzValidReturnTo(f *testing.F) {
	for _, s := range []string{"/", "/t/acme/", "//evil.com", `/\evil.com`, "/%2F%2Fevil.com", "/%252F%252Fevil.com", "/a?b=//c", "/.//evil.com", "/%09/evil.com"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://gatehouse.example/")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidReturnTo(s) {
			return
		}
		for _, v := range []string{s, unescapeOnce(s)} {
			u, err := base.Parse(v)
			if err != nil {
				continue
			}
			if u.Host != "gatehouse.example" || u.Scheme != "https" {
				t.Fatalf("%q leaves the site: %s", s, u)
			}
		}
	})
}

func unescapeOnce(s string) string {
	if v, err := url.PathUnescape(s); err == nil {
		return v
	}
	return s
}
