package server_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/session"
)

var (
	formActionRE = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	formCodeRE   = regexp.MustCompile(`<input type="hidden" name="code" value="([^"]*)">`)
	formStateRE  = regexp.MustCompile(`<input type="hidden" name="state" value="([^"]*)">`)
)

// Issue 10: a brokered sign-in of an app that asks for
// response_mode=form_post (ASP.NET's OpenID Connect handler does by
// default) is answered by the connection's callback itself: the page that
// posts the code to the app, with the session cookie, and no resume hop.
// The code is the same as resume's: bound to the app, PKCE and nonce, and
// good once; the page lets the form go to the app's origin only. The next
// sign-in of the same browser is answered by the authorize endpoint with
// the page, without a redirect.
func TestContractBrokeredFormPostFromCallback(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			gh, a, provider, conf := wikiClient(t, ctx, engine, "openid", "email")
			redirect := conf.RedirectURL
			verifier := oauth2.GenerateVerifier()
			var visited []string
			b := *servertest.Browser(t)
			b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				visited = append(visited, req.URL.Path)
				if strings.HasPrefix(req.URL.String(), redirect) {
					t.Errorf("redirected to the app: %s", req.URL)
					return http.ErrUseLastResponse
				}
				return nil
			}
			resp, err := b.Get(conf.AuthCodeURL("st-fp", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "ana@acme.com"),
				oauth2.SetAuthURLParam("response_mode", "form_post"), oauth2.SetAuthURLParam("nonce", "n-fp")))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(raw)
			if !containsPrefix(visited, "/sso/mock/") || containsPrefix(visited, "/t/acme/authorize/resume") || containsPrefix(visited, "/t/acme/login") {
				t.Fatalf("visited %v: want the IdP, then the form from the callback", visited)
			}
			if last := visited[len(visited)-1]; !strings.HasSuffix(last, "/callback") || !strings.HasPrefix(last, "/sso/mock/") {
				t.Fatalf("page served by %s", last)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			action := formActionRE.FindStringSubmatch(body)
			code := formCodeRE.FindStringSubmatch(body)
			state := formStateRE.FindStringSubmatch(body)
			if resp.StatusCode != http.StatusOK || action == nil || html.UnescapeString(action[1]) != redirect || code == nil || state == nil || state[1] != "st-fp" ||
				!strings.Contains(csp, "form-action https://wiki.acme.com;") || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("form_post page: %d %q %q %s", resp.StatusCode, csp, resp.Header.Get("Cache-Control"), body)
			}
			nonce := csp[strings.Index(csp, "'nonce-")+7:]
			nonce = nonce[:strings.Index(nonce, "'")]
			if !strings.Contains(body, `<script nonce="`+nonce+`">`) {
				t.Fatalf("the page's script is not the one the policy allows: %s", body)
			}
			base, _ := url.Parse(gh.URL)
			hasSession := false
			for _, c := range b.Jar.Cookies(base) {
				hasSession = hasSession || c.Name == session.CookieName
			}
			if !hasSession {
				t.Fatal("no session cookie with the form_post page")
			}
			tok, err := conf.Exchange(ctx, html.UnescapeString(code[1]), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("redeem the posted code: %v", err)
			}
			idt, err := provider.Verifier(&gooidc.Config{ClientID: a.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
			if err != nil || idt.Nonce != "n-fp" {
				t.Fatalf("id token: %v nonce %q", err, idt.Nonce)
			}
			if _, err := conf.Exchange(ctx, html.UnescapeString(code[1]), oauth2.VerifierOption(verifier)); err == nil {
				t.Fatal("the posted code was good twice")
			}

			// The same browser signs in to the app again: its session
			// answers at the authorize endpoint, which writes the page
			// itself (no redirect at all).
			visited = nil
			verifier = oauth2.GenerateVerifier()
			resp, err = b.Get(conf.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "form_post")))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(raw)
			code = formCodeRE.FindStringSubmatch(body)
			if len(visited) != 0 || resp.StatusCode != http.StatusOK || code == nil || !strings.Contains(body, `name="state" value="st-2"`) ||
				!strings.Contains(resp.Header.Get("Content-Security-Policy"), "form-action https://wiki.acme.com;") {
				t.Fatalf("second sign-in: visited %v, %d %s", visited, resp.StatusCode, body)
			}
			tok2, err := conf.Exchange(ctx, html.UnescapeString(code[1]), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("redeem the second posted code: %v", err)
			}
			idt2, err := provider.Verifier(&gooidc.Config{ClientID: a.ClientID}).Verify(ctx, tok2.Extra("id_token").(string))
			if err != nil || idt2.Subject != idt.Subject {
				t.Fatalf("second id token: %v, subject %q then %q", err, idt.Subject, idt2.Subject)
			}
		})
	}
}
