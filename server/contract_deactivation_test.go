package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
)

// Issue 8: "Deactivation by an admin or SCIM revokes refresh tokens and
// sessions at once." Revoked means gone for good: a token refused only
// while the user is inactive would work again after a reactivation. Each
// way of deactivating (admin API, SCIM PATCH, SCIM PUT, console) is
// followed by a reactivation through the same channel, and the refresh
// token issued before must stay dead.
func TestContractDeactivationRevokesRefreshTokens(t *testing.T) {
	gh, _ := acmeWithMock(t, "sqlite")
	a := wikiApp(t, gh)
	var scimTok struct {
		Token string `json:"token"`
	}
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/scim-tokens", map[string]any{"name": "idp"}, &scimTok); code != 201 {
		t.Fatalf("scim token: %d", code)
	}
	scimActive := func(userID string, active bool) int {
		return gh.APIWithToken(t, scimTok.Token, "PATCH", "/scim/v2/Users/"+userID, map[string]any{
			"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
			"Operations": []map[string]any{{"op": "replace", "path": "active", "value": active}},
		}, nil)
	}
	scimPut := func(userID string, active bool) int {
		var u map[string]any
		if code := gh.APIWithToken(t, scimTok.Token, "GET", "/scim/v2/Users/"+userID, nil, &u); code != 200 {
			t.Fatalf("scim get: %d", code)
		}
		u["active"] = active
		delete(u, "meta")
		return gh.APIWithToken(t, scimTok.Token, "PUT", "/scim/v2/Users/"+userID, u, nil)
	}
	console := consoleOperator(t, gh.URL)
	consoleStatus := func(userID string, active bool) int {
		p := "/console/t/acme/users/" + userID
		if active {
			return console.post(p, p+"/reactivate", url.Values{})
		}
		return console.post(p+"/deactivate", p+"/deactivate", url.Values{"confirm": {"yes"}})
	}

	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		setActive func(userID string, active bool) int
	}{
		{"admin API", func(id string, active bool) int {
			return gh.API(t, "PATCH", "/api/v1/tenants/acme/users/"+id, map[string]any{"active": active}, nil)
		}},
		{"SCIM PATCH", scimActive},
		{"SCIM PUT", scimPut},
		{"console", consoleStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, tok, sub := refreshableSignIn(t, ctx, gh.URL+"/t/acme", servertest.Browser(t), a, "https://wiki.acme.com/callback")
			if code := tc.setActive(sub, false); code >= 400 {
				t.Fatalf("deactivate: %d", code)
			}
			if code := tc.setActive(sub, true); code >= 400 {
				t.Fatalf("reactivate: %d", code)
			}
			if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
				t.Fatal("a refresh token issued before the deactivation works after the reactivation")
			}
		})
	}
}

// acmeWithMock starts an instance with tenant acme (domain acme.com) and a
// JIT mock connection that knows Ana; it returns the connection's id.
func acmeWithMock(t *testing.T, engine string) (*servertest.Instance, string) {
	t.Helper()
	gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true})
	gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}}, nil)
	var conn struct {
		ID string `json:"id"`
	}
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
		"type": "mock", "name": "Mock", "enabled": true, "jit": map[string]any{"enabled": true},
		"users": []map[string]any{{"subject": "00u1", "email": "ana@acme.com", "name": "Ana Lima"}},
	}, &conn); code != 201 {
		t.Fatalf("connection: %d", code)
	}
	return gh, conn.ID
}

// wikiApp registers a confidential app redirecting to
// https://wiki.acme.com/callback.
func wikiApp(t *testing.T, gh *servertest.Instance) app {
	t.Helper()
	var a app
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{
		"name": "wiki", "redirect_uris": []string{"https://wiki.acme.com/callback"},
	}, &a); code != 201 {
		t.Fatalf("app: %d", code)
	}
	return a
}

// wikiClient is the wiki app of acmeWithMock as a relying party of
// tenant acme: its issuer's provider and its OAuth client (scopes as
// given), redirecting to https://wiki.acme.com/callback.
func wikiClient(t *testing.T, ctx context.Context, engine string, scopes ...string) (*servertest.Instance, app, *gooidc.Provider, *oauth2.Config) {
	t.Helper()
	gh, _ := acmeWithMock(t, engine)
	a := wikiApp(t, gh)
	provider, err := gooidc.NewProvider(ctx, gh.URL+"/t/acme")
	if err != nil {
		t.Fatal(err)
	}
	return gh, a, provider, &oauth2.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, Endpoint: provider.Endpoint(),
		RedirectURL: "https://wiki.acme.com/callback", Scopes: scopes}
}

// codeFlow runs an app's code flow with PKCE in browser, with scopes and
// extra authorization parameters, and returns the token, the user's id
// (sub) and the paths the browser visited (to tell an IdP trip).
func codeFlow(t *testing.T, ctx context.Context, issuer string, browser *http.Client, a app, redirect string, scopes []string, extra ...oauth2.AuthCodeOption) (*oauth2.Config, *oauth2.Token, string, []string) {
	t.Helper()
	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := &oauth2.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, Endpoint: provider.Endpoint(), RedirectURL: redirect, Scopes: scopes}
	verifier := oauth2.GenerateVerifier()
	var code string
	var visited []string
	b := *browser
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		visited = append(visited, req.URL.Path)
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "ana@acme.com")}, extra...)
	resp, err := b.Get(conf.AuthCodeURL("st", opts...))
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("no code (status %d); visited %v", resp.StatusCode, visited)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&gooidc.Config{ClientID: a.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	return conf, tok, idt.Subject, visited
}

// refreshableSignIn is codeFlow with offline_access: the token carries a
// refresh token.
func refreshableSignIn(t *testing.T, ctx context.Context, issuer string, browser *http.Client, a app, redirect string) (*oauth2.Config, *oauth2.Token, string) {
	t.Helper()
	conf, tok, sub, _ := codeFlow(t, ctx, issuer, browser, a, redirect, []string{"openid", "email", "offline_access"})
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return conf, tok, sub
}

// consoleClient is an operator signed in to the console, posting forms
// with the CSRF token read from the page they are on.
type consoleClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func consoleOperator(t *testing.T, base string) *consoleClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &consoleClient{t: t, base: base, hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if code := c.post("/console/signin", "/console/signin", url.Values{"token": {servertest.AdminToken}}); code != http.StatusSeeOther {
		t.Fatalf("console sign-in: %d", code)
	}
	return c
}

// post sends form to path with the CSRF token of page; it returns the status.
func (c *consoleClient) post(page, path string, form url.Values) int {
	c.t.Helper()
	resp, err := c.hc.Get(c.base + page)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := consoleCSRF.FindSubmatch(body)
	if m == nil {
		c.t.Fatalf("no csrf token on %s (%d)", page, resp.StatusCode)
	}
	form.Set("csrf", string(m[1]))
	resp, err = c.hc.PostForm(c.base+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
