package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

type app struct {
	ID           string `json:"id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// signIn runs an app's authorization code flow with PKCE in browser and
// returns the verified ID token's claims and the paths the browser visited.
func signIn(t *testing.T, ctx context.Context, issuer string, browser *http.Client, a app, redirect string) (map[string]any, []string) {
	t.Helper()
	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := oauth2.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, Endpoint: provider.Endpoint(), RedirectURL: redirect, Scopes: []string{"openid", "email", "profile", "groups"}}
	verifier := oauth2.GenerateVerifier()
	nonceB := make([]byte, 16)
	_, _ = rand.Read(nonceB)
	nonce := base64.RawURLEncoding.EncodeToString(nonceB)
	authURL := conf.AuthCodeURL("st8", oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce), oauth2.SetAuthURLParam("login_hint", "ana@acme.com"))

	var visited []string
	var code string
	b := *browser
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		visited = append(visited, req.URL.Path)
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			if req.URL.Query().Get("state") != "st8" {
				t.Errorf("state not returned")
			}
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("no code; visited %v, last status %d", visited, resp.StatusCode)
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
	if idt.Nonce != nonce {
		t.Fatalf("nonce %q", idt.Nonce)
	}
	var claims map[string]any
	_ = idt.Claims(&claims)
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != idt.Subject {
		t.Fatalf("userinfo: %v %v", ui, err)
	}
	return claims, visited
}

// TestAppsShareOneSignIn is journey 3 through the whole server: a first
// sign-in to the wiki creates Ana just in time; the CRM then gets her in
// without another trip to the IdP.
func TestAppsShareOneSignIn(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true})
			gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}}, nil)
			gh.API(t, "POST", "/api/v1/tenants/acme/groups", map[string]any{"name": "Everyone"}, nil)
			if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
				"type": "mock", "name": "Okta (mock)", "enabled": true,
				"jit":   map[string]any{"enabled": true, "default_groups": []string{"Everyone"}, "update_profile": true},
				"users": []map[string]any{{"subject": "00u1", "email": "ana@acme.com", "name": "Ana Lima"}},
			}, nil); code != 201 {
				t.Fatalf("connection: %d", code)
			}
			var wiki, crm app
			for _, a := range []struct {
				name string
				out  *app
			}{{"wiki", &wiki}, {"crm", &crm}} {
				if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{
					"name": a.name, "redirect_uris": []string{"https://" + a.name + ".acme.com/callback"}, "id_token_signing_alg": "ES256",
				}, a.out); code != 201 || a.out.ClientSecret == "" {
					t.Fatalf("app %s: %d %+v", a.name, code, a.out)
				}
			}
			browser := servertest.Browser(t)
			issuer := gh.URL + "/t/acme"
			claims, visited := signIn(t, ctx, issuer, browser, wiki, "https://wiki.acme.com/callback")
			if claims["email"] != "ana@acme.com" || claims["name"] != "Ana Lima" {
				t.Fatalf("claims %v", claims)
			}
			if groups, _ := claims["groups"].([]any); len(groups) != 1 || groups[0] != "Everyone" {
				t.Fatalf("groups claim %v", claims["groups"])
			}
			if !containsPrefix(visited, "/sso/mock/") {
				t.Fatalf("first sign-in did not go to the IdP: %v", visited)
			}
			claims2, visited := signIn(t, ctx, issuer, browser, crm, "https://crm.acme.com/callback")
			if containsPrefix(visited, "/sso/") {
				t.Fatalf("second app went back to the IdP: %v", visited)
			}
			if claims2["sub"] != claims["sub"] {
				t.Fatalf("another user for the second app: %v vs %v", claims2["sub"], claims["sub"])
			}
		})
	}
}

func containsPrefix(paths []string, prefix string) bool {
	for _, p := range paths {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}
