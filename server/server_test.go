package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestJourneyFirstLogin walks the operator's and Ana's journeys through the
// whole wiring: health, a tenant and a connection made with the admin API,
// a first login that creates the user just in time, a second that reuses it.
func TestJourneyFirstLogin(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true})
			if code, _ := get(t, http.DefaultClient, gh.URL+"/healthz"); code != 200 {
				t.Fatalf("healthz %d", code)
			}
			if code, _ := get(t, http.DefaultClient, gh.URL+"/readyz"); code != 200 {
				t.Fatalf("readyz %d", code)
			}
			if code := gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}, "support_contact": "it@acme.com"}, nil); code != 201 {
				t.Fatalf("create tenant: %d", code)
			}
			var conn struct {
				ID          string `json:"id"`
				RedirectURI string `json:"redirect_uri"`
			}
			code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
				"type": "mock", "name": "Mock IdP", "enabled": true,
				"users": []map[string]any{{"subject": "ana-1", "email": "Ana@acme.com", "name": "Ana Lima", "groups": []string{"eng"}}},
			}, &conn)
			if code != 201 || conn.ID == "" || !strings.HasPrefix(conn.RedirectURI, gh.URL+"/sso/") {
				t.Fatalf("create connection: %d %+v", code, conn)
			}
			browser := servertest.Browser(t)
			for i := 0; i < 2; i++ {
				code, body := get(t, browser, gh.URL+"/t/acme/login?login_hint="+url.QueryEscape("Ana@acme.com"))
				if code != 200 || !strings.Contains(body, "Ana@acme.com") {
					t.Fatalf("login %d: %d %s", i, code, body)
				}
			}
			var users struct {
				Items []struct {
					Email, Source, Status, Username string
				} `json:"items"`
			}
			if code := gh.API(t, "GET", "/api/v1/tenants/acme/users?email=ana@ACME.com", nil, &users); code != 200 || len(users.Items) != 1 {
				t.Fatalf("users: %d %+v", code, users)
			}
			if u := users.Items[0]; u.Source != "jit" || u.Status != "active" || u.Username != "ana" {
				t.Fatalf("jit user: %+v", u)
			}
			var audit struct {
				Items []struct{ Action string } `json:"items"`
			}
			gh.API(t, "GET", "/api/v1/tenants/acme/audit?action=user.jit_created", nil, &audit)
			if len(audit.Items) != 1 {
				t.Fatalf("audit user.jit_created: %+v", audit)
			}
			_, metrics := get(t, http.DefaultClient, gh.URL+"/metrics")
			for _, want := range []string{
				`gatehouse_logins_total{connection="` + conn.ID + `",outcome="created",tenant="acme"} 1`,
				`gatehouse_logins_total{connection="` + conn.ID + `",outcome="existing",tenant="acme"} 1`,
				`gatehouse_jit_users_created_total{tenant="acme"} 1`,
				`gatehouse_http_requests_total{area="api",code="201",method="POST"}`,
				`go_sql_open_connections`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}

// TestMockConnectorNeedsDev: without GATEHOUSE_DEV the mock type does not
// exist, so nobody can create a connection that authenticates nobody.
func TestMockConnectorNeedsDev(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme"}, nil)
	var e struct {
		Error struct{ Code, Field string } `json:"error"`
	}
	code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "mock", "name": "m"}, &e)
	if code != 400 || e.Error.Code != "invalid" || e.Error.Field != "type" {
		t.Fatalf("mock without dev: %d %+v", code, e)
	}
}

func TestSecurityHeadersAndRequestID(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	resp, err := http.Get(gh.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	if resp.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS on plain http")
	}
}

func TestRateLimitAnswers429(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{Env: map[string]string{"GATEHOUSE_RATE_LIMIT_IP": "1"}})
	var last *http.Response
	for i := 0; i < 5; i++ {
		resp, err := http.Get(gh.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after a burst: %d retry-after %q", last.StatusCode, last.Header.Get("Retry-After"))
	}
	// The admin API and health checks are not on the limited paths.
	if code, _ := get(t, http.DefaultClient, gh.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz limited: %d", code)
	}
}

// TestAPIRootNeedsAuthentication: authentication comes first on every
// /api/v1 path, the bare prefix included.
func TestAPIRootNeedsAuthentication(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	for _, p := range []string{"/api/v1", "/api/v1/", "/api/v1/nothing-here", "/api/v1/tenants/nobody/users"} {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(gh.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", p, resp.StatusCode)
		}
	}
}
