package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// Issue 10: an app limited to some groups is answered from the
// connection's callback, like any app, when the login leaves its user in
// one of them (here the connection's default group, given at JIT
// creation): no resume hop. A user outside them still ends on resume's
// page, never at the app.
func TestContractGroupLimitedAppFromCallback(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true})
			gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}}, nil)
			gh.API(t, "POST", "/api/v1/tenants/acme/groups", map[string]any{"name": "Staff"}, nil)
			if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
				"type": "mock", "name": "Mock", "enabled": true, "jit": map[string]any{"enabled": true, "default_groups": []string{"Staff"}},
				"users": []map[string]any{{"subject": "00u1", "email": "ana@acme.com", "name": "Ana Lima"}},
			}, nil); code != 201 {
				t.Fatalf("connection: %d", code)
			}
			var a app
			if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{
				"name": "Payroll", "redirect_uris": []string{"https://payroll.acme.com/callback"}, "allowed_groups": []string{"Staff"},
			}, &a); code != 201 {
				t.Fatalf("app: %d", code)
			}
			issuer, redirect := gh.URL+"/t/acme", "https://payroll.acme.com/callback"
			_, tok, _, visited := codeFlow(t, ctx, issuer, servertest.Browser(t), a, redirect, []string{"openid", "email"})
			if !containsPrefix(visited, "/sso/mock/") || containsPrefix(visited, "/t/acme/authorize/resume") || visited[len(visited)-1] != "/callback" {
				t.Fatalf("visited %v: want the IdP, then the app without the resume hop", visited)
			}
			if tok.AccessToken == "" {
				t.Fatal("no access token")
			}

			// Another app limited to a group Ana is not in: resume's page.
			gh.API(t, "POST", "/api/v1/tenants/acme/groups", map[string]any{"name": "Finance"}, nil)
			var fin app
			if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{
				"name": "Ledger", "redirect_uris": []string{"https://ledger.acme.com/callback"}, "allowed_groups": []string{"Finance"},
			}, &fin); code != 201 {
				t.Fatalf("app: %d", code)
			}
			b := *servertest.Browser(t)
			var hops []string
			b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				hops = append(hops, req.URL.String())
				if strings.HasPrefix(req.URL.String(), "https://ledger.acme.com/") {
					return http.ErrUseLastResponse
				}
				return nil
			}
			resp, err := b.Get(issuer + "/authorize?response_type=code&scope=openid&client_id=" + fin.ClientID +
				"&redirect_uri=https%3A%2F%2Fledger.acme.com%2Fcallback&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&login_hint=ana%40acme.com")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !containsPrefix(pathsOf(hops), "/t/acme/authorize/resume") {
				t.Fatalf("a user outside the app's groups: %d after %v", resp.StatusCode, hops)
			}
		})
	}
}

// pathsOf is the paths of URLs.
func pathsOf(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		if _, rest, ok := strings.Cut(u, "://"); ok {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				u = rest[i:]
			}
		}
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i]
		}
		out = append(out, u)
	}
	return out
}
