package op

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"golang.org/x/oauth2"
)

// authorizeURL builds an authorize request by hand, for requests an RP
// library would refuse to build.
func (e *env) authorizeURL(a *gatehouse.App, redirect string, extra url.Values) string {
	v := url.Values{"client_id": {a.ClientID}, "response_type": {"code"}, "scope": {"openid email"},
		"redirect_uri": {redirect}, "state": {"st"}}
	for k, vals := range extra {
		v[k] = vals
	}
	return e.issuer() + "/authorize?" + v.Encode()
}

func TestRedirectURINearMisses(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	a, sec := e.app(gatehouse.App{RedirectURIs: []string{"https://wiki.example/cb", "http://127.0.0.1:8080/cb"}})
	_, challenge := pkce()
	pk := url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for _, bad := range []string{
		"https://wiki.example/cb/",          // trailing slash
		"https://wiki.example:8443/cb",      // another port
		"https://wiki.example:443/cb",       // explicit default port: not byte-equal
		"https://wiki.example/cb/extra",     // path suffix
		"https://wiki.example/cbx",          // path prefix match
		"https://WIKI.example/cb",           // host case
		"https://wiki.example/CB",           // path case
		"https://wiki.example/cb?next=/x",   // added query
		"https://wiki.example/cb#frag",      // fragment
		"http://wiki.example/cb",            // scheme downgrade
		"https://wiki.example.evil.test/cb", // host suffix
		"https://evil.test/https://wiki.example/cb",
		"https://wiki.example/cb/../cb", // dot segments
		"https://wiki.example/%63b",     // percent-encoding
		"http://127.0.0.1:8081/cb",      // loopback, another port
		"http://localhost:8080/cb",      // loopback alias
		"",
	} {
		resp, body := get(t, e.browser(), e.authorizeURL(a, bad, pk))
		loc := resp.Header.Get("Location")
		if resp.StatusCode == http.StatusFound || loc != "" {
			t.Errorf("redirect_uri %q: %d, Location %q", bad, resp.StatusCode, loc)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("redirect_uri %q: status %d %s", bad, resp.StatusCode, body)
		}
	}
	// The exact ones work; the token request must name the same one.
	r := e.rp(a, sec)
	verifier, challenge := pkce()
	q := r.authorize(e.browser(), oauth2.S256ChallengeOption(verifier))
	_ = challenge
	v := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {"https://wiki.example/cb/"}, "code_verifier": {verifier}}
	if status, body := e.form("/token", v, a.ClientID, sec); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("token with another redirect_uri: %d %v", status, body)
	}
}

func TestPKCEDowngrade(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	pub, _ := e.app(gatehouse.App{Public: true, RedirectURIs: []string{"https://spa.example/cb"}})
	conf, sec := e.app(gatehouse.App{})
	verifier, challenge := pkce()
	b := e.browser()

	authErr := func(a *gatehouse.App, extra url.Values) string {
		resp, body := get(t, b, e.authorizeURL(a, a.RedirectURIs[0], extra))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil {
			t.Fatalf("authorize: %d %s", resp.StatusCode, body)
		}
		return loc.Query().Get("error")
	}
	// Every client must use PKCE; plain and a missing method (which means
	// plain, RFC 7636 section 4.3) are refused for everyone.
	for name, tc := range map[string]struct {
		app   *gatehouse.App
		extra url.Values
	}{
		"public without PKCE":       {pub, nil},
		"confidential without PKCE": {conf, nil},
		"public plain":              {pub, url.Values{"code_challenge": {verifier}, "code_challenge_method": {"plain"}}},
		"public method missing":     {pub, url.Values{"code_challenge": {verifier}}},
		"confidential plain":        {conf, url.Values{"code_challenge": {verifier}, "code_challenge_method": {"plain"}}},
		"confidential unknown meth": {conf, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S512"}}},
	} {
		if got := authErr(tc.app, tc.extra); got != "invalid_request" {
			t.Errorf("%s: error %q, want invalid_request", name, got)
		}
	}

	codeFor := func(a *gatehouse.App, extra url.Values) string {
		resp, body := get(t, b, e.authorizeURL(a, a.RedirectURIs[0], extra))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("no code: %d %s %v", resp.StatusCode, body, loc)
		}
		return loc.Query().Get("code")
	}
	s256 := url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	exchange := func(a *gatehouse.App, sec, code string, extra url.Values) (int, map[string]any) {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURIs[0]}}
		if a.Public {
			v.Set("client_id", a.ClientID)
		}
		for k, vals := range extra {
			v[k] = vals
		}
		user := a.ClientID
		if a.Public {
			user = ""
		}
		return e.form("/token", v, user, sec)
	}
	// The challenge was S256: no verifier, a wrong one, or the challenge
	// itself as a "plain" verifier all fail.
	for name, extra := range map[string]url.Values{
		"no verifier":           nil,
		"wrong verifier":        {"code_verifier": {verifier + "x"}},
		"challenge as verifier": {"code_verifier": {challenge}},
	} {
		for _, a := range []*gatehouse.App{pub, conf} {
			sc := ""
			if !a.Public {
				sc = sec
			}
			if status, body := exchange(a, sc, codeFor(a, s256), extra); status == 200 {
				t.Errorf("%s (public=%v): tokens issued: %v", name, a.Public, body)
			}
		}
	}
	// The right verifier works (public client, no secret).
	if status, body := exchange(pub, "", codeFor(pub, s256), url.Values{"code_verifier": {verifier}}); status != 200 {
		t.Fatalf("correct PKCE: %d %v", status, body)
	}
}

func TestCodeReuse(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		other, osec := e.app(gatehouse.App{Name: "Other", RedirectURIs: []string{"https://wiki.example/cb"}})
		r := e.rp(a, sec)
		verifier, _ := pkce()
		q := r.authorize(e.browser(), oauth2.S256ChallengeOption(verifier))
		v := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {"https://wiki.example/cb"}, "code_verifier": {verifier}}

		// Another client cannot redeem it (and burns it).
		q2 := r.authorize(e.browser(), oauth2.S256ChallengeOption(verifier))
		v2 := url.Values{"grant_type": {"authorization_code"}, "code": {q2.Get("code")}, "redirect_uri": {"https://wiki.example/cb"}, "code_verifier": {verifier}}
		if status, _ := e.form("/token", v2, other.ClientID, osec); status == 200 {
			t.Fatal("another client redeemed the code")
		}

		status, first := e.form("/token", v, a.ClientID, sec)
		if status != 200 {
			t.Fatalf("first use: %d %v", status, first)
		}
		status, second := e.form("/token", v, a.ClientID, sec)
		if status != 400 || second["error"] != "invalid_grant" {
			t.Fatalf("second use: %d %v", status, second)
		}
		// The second use revoked what the first one issued.
		if s, _ := userinfo(t, e.issuer(), first["access_token"].(string)); s == 200 {
			t.Fatal("access token of a reused code still works")
		}
		rv := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}
		if status, _ := e.form("/token", rv, a.ClientID, sec); status == 200 {
			t.Fatal("refresh token of a reused code still works")
		}
		// Codes expire.
		q3 := r.authorize(e.browser(), oauth2.S256ChallengeOption(verifier))
		e.clock.Advance(codeTTL + time.Second)
		v.Set("code", q3.Get("code"))
		if status, _ := e.form("/token", v, a.ClientID, sec); status == 200 {
			t.Fatal("expired code redeemed")
		}
	})
}

func TestOtherTenantTokensRefused(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	a, sec := e.app(gatehouse.App{})
	globex := &gatehouse.Tenant{Slug: "globex", Name: "Globex"}
	e.update(func(tx gatehouse.Tx) error { return tx.CreateTenant(e.ctx, globex) })
	// Same client id in the other tenant: ids are per tenant.
	g, gsec := e.app(gatehouse.App{TenantID: globex.ID, ClientID: a.ClientID})
	gIssuer := e.srv.URL + "/t/globex"

	tok, _ := e.rp(a, sec).login(e.browser())
	if s, _ := userinfo(t, gIssuer, tok.AccessToken); s == 200 {
		t.Fatal("acme token accepted at globex userinfo")
	}
	req := func(path string, v url.Values, user, pass string) (int, map[string]any) {
		return e.post(gIssuer, path, v, user, pass)
	}
	if _, in := req("/introspect", url.Values{"token": {tok.AccessToken}}, g.ClientID, gsec); in["active"] != false {
		t.Fatalf("acme token active at globex: %v", in)
	}
	// acme's secret does not authenticate at globex, nor globex's at acme.
	if status, _ := req("/introspect", url.Values{"token": {tok.AccessToken}}, a.ClientID, sec); status != 401 {
		t.Fatalf("acme secret at globex: %d", status)
	}
	if status, _ := req("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, g.ClientID, gsec); status == 200 {
		t.Fatal("acme refresh token redeemed at globex")
	}
	// An ID token of acme is no id_token_hint at globex.
	resp, _ := get(t, e.browser(), gIssuer+"/end_session?"+url.Values{"id_token_hint": {tok.Extra("id_token").(string)}}.Encode())
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("acme id_token_hint at globex: %d", resp.StatusCode)
	}
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestAlgConfusion(t *testing.T) {
	e := newEnv(t, "sqlite")
	ana := e.user("ana@acme.test")
	e.signInAs(ana)
	a, sec := e.app(gatehouse.App{})
	tok, _ := e.rp(a, sec).login(e.browser())
	// The tenant's public key, as an attacker reads it from the JWKS.
	_, jwks := get(t, http.DefaultClient, e.issuer()+"/jwks")
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks %s", jwks)
	}
	kid, _ := set.Keys[0]["kid"].(string)
	now := time.Now().Unix()
	claims := map[string]any{"iss": e.issuer(), "sub": ana.ID, "aud": []string{a.ClientID}, "azp": a.ClientID,
		"exp": now + 600, "iat": now, "jti": "oat_forged", "client_id": a.ClientID}
	payload := b64(claims)
	// HS256 with the public key (its JSON and its modulus) as the HMAC secret.
	var forged []string
	for _, secretBytes := range [][]byte{[]byte(jwks), []byte(set.Keys[0]["n"].(string))} {
		h := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})
		m := hmac.New(sha256.New, secretBytes)
		m.Write([]byte(h + "." + payload))
		forged = append(forged, h+"."+payload+"."+base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
	}
	// alg none, with and without a kid.
	forged = append(forged, b64(map[string]any{"alg": "none", "typ": "JWT"})+"."+payload+".",
		b64(map[string]any{"alg": "none", "kid": kid})+"."+payload+".")
	// A real token's signature on another payload.
	parts := strings.Split(tok.Extra("id_token").(string), ".")
	forged = append(forged, parts[0]+"."+payload+"."+parts[2])

	for i, f := range forged {
		if s, body := userinfo(t, e.issuer(), f); s == 200 {
			t.Errorf("forged token %d accepted at userinfo: %v", i, body)
		}
		if _, in := e.form("/introspect", url.Values{"token": {f}}, a.ClientID, sec); in["active"] != false {
			t.Errorf("forged token %d active at introspection", i)
		}
		resp, _ := get(t, e.browser(), e.issuer()+"/end_session?"+url.Values{"id_token_hint": {f}}.Encode())
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("forged token %d accepted as id_token_hint: %d", i, resp.StatusCode)
		}
	}
	// The ID token is not an access token either.
	if s, _ := userinfo(t, e.issuer(), tok.Extra("id_token").(string)); s == 200 {
		t.Error("ID token accepted as an access token")
	}
}

func TestDeactivatedUser(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		b := e.browser()
		tok, _ := r.login(b)
		// A code obtained before the deactivation, redeemed after it.
		verifier, _ := pkce()
		q := r.authorize(b, oauth2.S256ChallengeOption(verifier))

		e.update(func(tx gatehouse.Tx) error {
			u, err := tx.GetUser(e.ctx, e.tenant.ID, ana.ID)
			if err != nil {
				return err
			}
			u.Status = gatehouse.StatusDeactivated
			return tx.UpdateUser(e.ctx, u)
		})
		if s, _ := userinfo(t, e.issuer(), tok.AccessToken); s == 200 {
			t.Fatal("userinfo for a deactivated user")
		}
		if _, in := e.form("/introspect", url.Values{"token": {tok.AccessToken}}, a.ClientID, sec); in["active"] != false {
			t.Fatal("deactivated user's token is active")
		}
		rv := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
		if status, _ := e.form("/token", rv, a.ClientID, sec); status == 200 {
			t.Fatal("refresh for a deactivated user")
		}
		cv := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {"https://wiki.example/cb"}, "code_verifier": {verifier}}
		if status, _ := e.form("/token", cv, a.ClientID, sec); status == 200 {
			t.Fatal("code redeemed for a deactivated user")
		}
		// The browser session is gone too: authorize does not answer the app.
		resp, _ := get(t, b, r.cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
		if resp.StatusCode == http.StatusFound {
			t.Fatalf("authorize for a deactivated user redirected to %s", resp.Header.Get("Location"))
		}

		// RevokeUserTokens (what the API and SCIM call on deactivation)
		// revokes for good: reactivating does not bring tokens back.
		e.update(func(tx gatehouse.Tx) error {
			n, err := RevokeUserTokens(e.ctx, tx, e.tenant.ID, ana.ID, time.Now())
			// One row at least: the refresh token and the access token
			// paired with it.
			if err == nil && n < 1 {
				t.Errorf("revoked %d tokens", n)
			}
			return err
		})
		e.update(func(tx gatehouse.Tx) error {
			u, err := tx.GetUser(e.ctx, e.tenant.ID, ana.ID)
			if err != nil {
				return err
			}
			u.Status = gatehouse.StatusActive
			return tx.UpdateUser(e.ctx, u)
		})
		if s, _ := userinfo(t, e.issuer(), tok.AccessToken); s == 200 {
			t.Fatal("revoked token works after reactivation")
		}
		// A deleted user (tombstone) likewise.
		tok2, _ := r.login(e.browser())
		e.update(func(tx gatehouse.Tx) error { return tx.DeleteUser(e.ctx, e.tenant.ID, ana.ID) })
		if s, _ := userinfo(t, e.issuer(), tok2.AccessToken); s == 200 {
			t.Fatal("userinfo for a deleted user")
		}
		if status, _ := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2.RefreshToken}}, a.ClientID, sec); status == 200 {
			t.Fatal("refresh for a deleted user")
		}
	})
}
