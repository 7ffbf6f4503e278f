package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// Issue 10: a brokered sign-in (app → Gatehouse → IdP → back → code) goes
// from the authorize request straight to the IdP (the login served in
// place), and from the connection's callback straight to the app with a
// code issued in the login's own transaction: no login or resume hop, and the same tokens,
// claims and single use as before. A login the IdP's user may not make
// ends on a page that says so, never at the app.
func TestContractBrokeredSignInFromCallbackToApp(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			gh, _ := acmeWithMock(t, engine)
			a := wikiApp(t, gh)
			issuer, redirect := gh.URL+"/t/acme", "https://wiki.acme.com/callback"
			browser := servertest.Browser(t)
			_, tok, sub, visited := codeFlow(t, ctx, issuer, browser, a, redirect, []string{"openid", "email"})
			if !containsPrefix(visited, "/sso/mock/") || containsPrefix(visited, "/t/acme/authorize/resume") || containsPrefix(visited, "/t/acme/login") {
				t.Fatalf("visited %v: want the IdP at once, then the app without the resume hop", visited)
			}
			if last := visited[len(visited)-1]; last != "/callback" {
				t.Fatalf("last hop %s", last)
			}
			raw, _ := tok.Extra("id_token").(string)
			provider, err := gooidc.NewProvider(ctx, issuer)
			if err != nil {
				t.Fatal(err)
			}
			idt, err := provider.Verifier(&gooidc.Config{ClientID: a.ClientID}).Verify(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Email    string `json:"email"`
				SID      string `json:"sid"`
				AuthTime int64  `json:"auth_time"`
			}
			if err := idt.Claims(&claims); err != nil || claims.Email != "ana@acme.com" || claims.SID == "" || claims.AuthTime == 0 || idt.Subject != sub {
				t.Fatalf("claims %+v %v", claims, err)
			}
			// The session the login started answers the next request of
			// the same browser at once, with the same sid.
			_, tok2, sub2, visited := codeFlow(t, ctx, issuer, browser, a, redirect, []string{"openid"})
			if containsPrefix(visited, "/sso/") || sub2 != sub {
				t.Fatalf("second sign-in: %v %s", visited, sub2)
			}
			idt2, err := provider.Verifier(&gooidc.Config{ClientID: a.ClientID}).Verify(ctx, tok2.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			var claims2 struct {
				SID string `json:"sid"`
			}
			if err := idt2.Claims(&claims2); err != nil || claims2.SID != claims.SID {
				t.Fatalf("sid %q then %q", claims.SID, claims2.SID)
			}

			// A user the connection may not create: a page, not the app.
			gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "globex", "name": "Globex"}, nil)
			var conn struct {
				ID string `json:"id"`
			}
			if code := gh.API(t, "POST", "/api/v1/tenants/globex/connections", map[string]any{
				"type": "mock", "name": "Mock", "enabled": true, "jit": map[string]any{"enabled": false},
				"users": []map[string]any{{"subject": "00u9", "email": "ana@acme.com", "name": "Ana Lima"}},
			}, &conn); code != 201 {
				t.Fatalf("connection: %d", code)
			}
			var g app
			if code := gh.API(t, "POST", "/api/v1/tenants/globex/apps", map[string]any{
				"name": "wiki", "redirect_uris": []string{redirect},
			}, &g); code != 201 {
				t.Fatalf("app: %d", code)
			}
			gp, err := gooidc.NewProvider(ctx, gh.URL+"/t/globex")
			if err != nil {
				t.Fatal(err)
			}
			conf := oauth2.Config{ClientID: g.ClientID, ClientSecret: g.ClientSecret, Endpoint: gp.Endpoint(), RedirectURL: redirect, Scopes: []string{"openid"}}
			b := *servertest.Browser(t)
			reachedApp := false
			b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				if strings.HasPrefix(req.URL.String(), redirect) {
					reachedApp = true
					return http.ErrUseLastResponse
				}
				return nil
			}
			resp, err := b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("login_hint", "ana@acme.com")))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if reachedApp || resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("refused login: app reached %v, %d %s", reachedApp, resp.StatusCode, body)
			}
		})
	}
}
