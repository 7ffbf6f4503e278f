package op

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

func jwksKids(t *testing.T, e *env) map[string]string {
	t.Helper()
	resp, body := get(t, http.DefaultClient, e.issuer()+"/jwks")
	if resp.StatusCode != 200 {
		t.Fatalf("jwks: %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kid, Alg, Use, Kty string
			D                  string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range set.Keys {
		if k.D != "" || strings.Contains(body, `"p"`) {
			t.Fatal("private key material in the JWKS")
		}
		if k.Use != "sig" {
			t.Errorf("key %s use %q", k.Kid, k.Use)
		}
		out[k.Kid] = k.Alg
	}
	return out
}

func TestSigningKeysAndRotation(t *testing.T) {
	e := newEnv(t, "sqlite")
	// A relying party may fetch the JWKS before the first sign-in: the
	// default RS256 key exists by then.
	if got := jwksKids(t, e); len(got) != 1 || !hasAlg(got, "RS256") {
		t.Fatalf("keys before first use: %v, want one RS256 key", got)
	}
	e.signInAs(e.user("ana@acme.test"))
	rs, rsec := e.app(gatehouse.App{Name: "RS"})
	ed, esec := e.app(gatehouse.App{Name: "Ed", IDTokenSigningAlg: "EdDSA"})
	tokRS, _ := e.rp(rs, rsec).login(e.browser())
	tokEd, _ := e.rp(ed, esec).login(e.browser())
	kids := jwksKids(t, e)
	if len(kids) != 2 {
		t.Fatalf("jwks %v, want one RS256 and one EdDSA key", kids)
	}
	oldKid := map[string]string{}
	for kid, alg := range kids {
		oldKid[alg] = kid
	}
	// Private keys are sealed with the root key, bound to their key id.
	e.update(func(tx gatehouse.Tx) error {
		keys, err := tx.ListSigningKeys(e.ctx, e.tenant.ID)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := e.keyring.Open(k.Private, []byte(k.ID)); err != nil {
				t.Errorf("key %s does not open with its id: %v", k.ID, err)
			}
			if _, err := e.keyring.Open(k.Private, []byte("key_other")); err == nil {
				t.Errorf("key %s opens under another id", k.ID)
			}
		}
		return nil
	})

	if err := RotateKeys(e.ctx, e.store, e.keyring, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	kids = jwksKids(t, e)
	if len(kids) != 4 {
		t.Fatalf("after rotation %v, want the 2 retired and 2 new keys", kids)
	}
	// Tokens signed before the rotation still verify (an RP refetches
	// the JWKS); new ones use the new keys.
	for _, tok := range []string{tokRS.Extra("id_token").(string), tokEd.Extra("id_token").(string)} {
		hint := url.Values{"id_token_hint": {tok}}
		if resp, _ := get(t, noRedirect(), e.issuer()+"/end_session?"+hint.Encode()); resp.StatusCode != http.StatusFound {
			t.Fatalf("old ID token refused after rotation: %d", resp.StatusCode)
		}
	}
	e.signInAs(e.user("bo@acme.test"))
	tok2, _ := e.rp(rs, rsec).login(e.browser())
	if h := string(mustHeader(t, tok2.Extra("id_token").(string))); strings.Contains(h, oldKid["RS256"]) {
		t.Fatalf("signed with the retired key: %s", h)
	}
	// A day later the retired keys are gone.
	e.clock.Advance(retiredKeyOverlap + time.Minute)
	kids = jwksKids(t, e)
	if len(kids) != 2 || kids[oldKid["RS256"]] != "" || kids[oldKid["EdDSA"]] != "" {
		t.Fatalf("retired keys still published: %v", kids)
	}
	var events []*gatehouse.AuditEvent
	e.update(func(tx gatehouse.Tx) error {
		var err error
		events, _, err = tx.ListAudit(e.ctx, e.tenant.ID, gatehouse.AuditFilter{Action: "signing_key.rotated"}, gatehouse.Page{})
		return err
	})
	if len(events) != 1 {
		t.Fatalf("rotation audit events: %d", len(events))
	}
	// The schedule: a key older than KeyRotation is rotated when it signs.
	e.clock.Advance(DefaultKeyRotation)
	before := jwksKids(t, e)
	e.rp(rs, rsec).login(e.browser())
	after := jwksKids(t, e)
	if len(after) <= len(before)-1 {
		t.Fatalf("scheduled rotation: before %v after %v", before, after)
	}
}

func TestConcurrentFirstKey(t *testing.T) {
	e := newEnv(t, "sqlite")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.prov.keys.signingKey(e.ctx, e.tenant.ID, "ES256"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(jwksKids(t, e)); n != 1 {
		t.Fatalf("%d keys created by concurrent first use, want 1", n)
	}
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestConcurrentRefreshReuse(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		tok, _ := e.rp(a, sec).login(e.browser())
		var mu sync.Mutex
		var ok []string
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, body := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, a.ClientID, sec)
				if status == 200 {
					mu.Lock()
					ok = append(ok, body["refresh_token"].(string))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(ok) > 1 {
			t.Fatalf("%d concurrent refreshes of one token succeeded", len(ok))
		}
		// The others were reuse: the family is revoked, the winner's too.
		for _, rt := range ok {
			if status, _ := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, a.ClientID, sec); status == 200 {
				t.Fatal("a family with a reused token still refreshes")
			}
		}
	})
}

func TestForwardAuth(t *testing.T) {
	e := newEnv(t, "sqlite")
	ana := e.user("ana@acme.test", "Staff", "Ops, EU")
	bo := e.user("bo@acme.test")
	a, _ := e.app(gatehouse.App{Name: "Grafana", AllowedGroups: []string{"Staff"}})
	fa := e.issuer() + "/forward-auth"

	check := func(b *http.Client, u string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := b.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Signed out: 401 for nginx; a redirect to login for Traefik/Caddy,
	// back to the original local URI only.
	anon := noRedirect()
	if resp := check(anon, fa, nil); resp.StatusCode != 401 {
		t.Fatalf("signed out: %d", resp.StatusCode)
	}
	resp := check(anon, fa+"?redirect=1", map[string]string{"X-Forwarded-Uri": "/grafana/d/1?x=2"})
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/t/acme/login?return_to=%2Fgrafana%2Fd%2F1%3Fx%3D2" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, bad := range []string{"//evil.test/x", "https://evil.test/", "/\\evil.test", "/a b\"<x>"} {
		resp := check(anon, fa+"?redirect=1", map[string]string{"X-Forwarded-Uri": bad})
		if loc := resp.Header.Get("Location"); strings.Contains(loc, "return_to") {
			t.Errorf("return_to kept for %q: %s", bad, loc)
		}
	}

	// Signed in (a session cookie from the login).
	e.signInAs(ana)
	b := e.browser()
	get(t, b, e.issuer()+"/login")
	resp = check(b, fa+"?app="+a.ClientID, nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Gatehouse-User") != ana.ID || resp.Header.Get("X-Gatehouse-Email") != "ana@acme.test" ||
		resp.Header.Get("X-Gatehouse-Groups") != "Ops  EU,Staff" || resp.Header.Get("X-Gatehouse-Username") != "ana" {
		t.Fatalf("signed in: %d %v", resp.StatusCode, resp.Header)
	}
	// Bo is signed in but not in the app's groups.
	e.signInAs(bo)
	b2 := e.browser()
	get(t, b2, e.issuer()+"/login")
	if resp := check(b2, fa+"?app="+a.ClientID, nil); resp.StatusCode != 403 {
		t.Fatalf("not allowed: %d", resp.StatusCode)
	}
	if resp := check(b2, fa, nil); resp.StatusCode != 200 {
		t.Fatalf("no app named: %d", resp.StatusCode)
	}
	if resp := check(b2, fa+"?app=nope", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown app: %d", resp.StatusCode)
	}
}

func hasAlg(kids map[string]string, alg string) bool {
	for _, a := range kids {
		if a == alg {
			return true
		}
	}
	return false
}
