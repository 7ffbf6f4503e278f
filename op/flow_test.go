package op

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-sso/gatehouse"
	"golang.org/x/oauth2"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t, "sqlite")
	resp, body := get(t, http.DefaultClient, e.issuer()+"/.well-known/openid-configuration")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	iss := e.issuer()
	for k, want := range map[string]any{
		"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
		"userinfo_endpoint": iss + "/userinfo", "jwks_uri": iss + "/jwks", "revocation_endpoint": iss + "/revoke",
		"introspection_endpoint": iss + "/introspect", "end_session_endpoint": iss + "/end_session",
		"code_challenge_methods_supported": []any{"S256"}, "response_types_supported": []any{"code"},
		"grant_types_supported":                 []any{"authorization_code", "refresh_token", "client_credentials"},
		"id_token_signing_alg_values_supported": []any{"RS256", "ES256", "EdDSA"},
		"backchannel_logout_supported":          true,
	} {
		got, _ := json.Marshal(d[k])
		w, _ := json.Marshal(want)
		if string(got) != string(w) {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	for _, k := range []string{"device_authorization_endpoint", "check_session_iframe"} {
		if _, ok := d[k]; ok {
			t.Errorf("%s advertised", k)
		}
	}
	// go-oidc checks that the issuer matches the URL it fetched.
	if _, err := oidc.NewProvider(e.ctx, iss); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/t/nope/.well-known/openid-configuration", "/t/nope/jwks", "/t/" + e.tenant.ID + "/jwks"} {
		if resp, _ := get(t, http.DefaultClient, e.srv.URL+path); resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestCodeFlow(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test", "Staff", "Admins")
		e.signInAs(ana)
		conf, sec := e.app(gatehouse.App{Name: "Wiki"})
		pub, _ := e.app(gatehouse.App{Name: "SPA", Public: true, RedirectURIs: []string{"https://spa.example/cb"}, IDTokenSigningAlg: "ES256"})
		b := e.browser()

		// Confidential client: the first app sends the browser to login.
		tok, idt := e.rp(conf, sec).login(b)
		if e.loginCount() != 1 {
			t.Fatalf("logins %d, want 1", e.loginCount())
		}
		var claims map[string]any
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]any{
			"sub": ana.ID, "email": "ana@acme.test", "email_verified": true, "name": "Ana Lima", "given_name": "Ana",
			"family_name": "Lima", "preferred_username": "ana", "groups": []any{"Admins", "Staff"}, "azp": conf.ClientID,
		} {
			got, _ := json.Marshal(claims[k])
			w, _ := json.Marshal(want)
			if string(got) != string(w) {
				t.Errorf("ID token %s = %s, want %s", k, got, w)
			}
		}
		if claims["sid"] == nil || claims["auth_time"] == nil {
			t.Errorf("ID token lacks sid or auth_time: %v", claims)
		}
		if tok.RefreshToken == "" || !strings.HasPrefix(tok.RefreshToken, "gh_rt_") {
			t.Errorf("refresh token %q", tok.RefreshToken)
		}
		status, ui := userinfo(t, e.issuer(), tok.AccessToken)
		if status != 200 || ui["sub"] != ana.ID || ui["email"] != "ana@acme.test" {
			t.Fatalf("userinfo %d %v", status, ui)
		}

		// Public client with PKCE, ES256: single sign-on, no second login.
		tok2, idt2 := e.rp(pub, "").login(b)
		if e.loginCount() != 1 {
			t.Fatalf("second app sent the browser to login again (%d logins)", e.loginCount())
		}
		if idt2.Subject != ana.ID {
			t.Fatalf("sub %q", idt2.Subject)
		}
		if h := string(mustHeader(t, tok2.Extra("id_token").(string))); !strings.Contains(h, `"alg":"ES256"`) {
			t.Fatalf("public app chose ES256, header %s", h)
		}
		if h := string(mustHeader(t, tok.Extra("id_token").(string))); !strings.Contains(h, `"alg":"RS256"`) {
			t.Fatalf("default RS256, header %s", h)
		}
		// A public client refreshes and revokes with its client_id alone.
		status, body := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2.RefreshToken}, "client_id": {pub.ClientID}}, "", "")
		if status != 200 {
			t.Fatalf("public refresh: %d %v", status, body)
		}
		rt := body["refresh_token"].(string)
		if status, body := e.form("/revoke", url.Values{"token": {rt}, "client_id": {pub.ClientID}}, "", ""); status != 200 {
			t.Fatalf("public revoke: %d %v", status, body)
		}
		if status, _ := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {pub.ClientID}}, "", ""); status != 400 {
			t.Fatalf("refresh after public revoke: %d", status)
		}
	})
}

func mustHeader(t *testing.T, jwt string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScopesAndUnknownScope(t *testing.T) {
	e := newEnv(t, "sqlite")
	ana := e.user("ana@acme.test", "Staff")
	e.signInAs(ana)
	a, sec := e.app(gatehouse.App{})
	r := e.rp(a, sec, "openid", "email", "made-up-scope")
	tok, idt := r.login(e.browser())
	var claims map[string]any
	_ = idt.Claims(&claims)
	if claims["email"] != "ana@acme.test" || claims["groups"] != nil || claims["name"] != nil {
		t.Fatalf("claims for openid email: %v", claims)
	}
	if tok.RefreshToken != "" {
		t.Fatal("refresh token without offline_access")
	}
	if sc, _ := tok.Extra("scope").(string); strings.Contains(sc, "made-up") {
		t.Fatalf("unknown scope granted: %q", sc)
	}
	var events []*gatehouse.AuditEvent
	e.update(func(tx gatehouse.Tx) error {
		var err error
		events, _, err = tx.ListAudit(e.ctx, e.tenant.ID, gatehouse.AuditFilter{Action: "app.signed_in"}, gatehouse.Page{})
		return err
	})
	if len(events) != 1 || events[0].ActorID != ana.ID || events[0].TargetID != a.ID {
		t.Fatalf("sign-in audit: %+v", events)
	}
}

func TestPromptLoginMaxAgeAndNone(t *testing.T) {
	e := newEnv(t, "sqlite")
	ana := e.user("ana@acme.test")
	e.signInAs(ana)
	a, sec := e.app(gatehouse.App{})
	r := e.rp(a, sec)
	b := e.browser()
	r.login(b)
	if e.loginCount() != 1 {
		t.Fatal("first login")
	}
	r.login(b)
	if e.loginCount() != 1 {
		t.Fatal("a valid session should not log in again")
	}
	// prompt=login forces re-authentication even with a session.
	e.clock.Advance(replicaSkew + time.Second)
	_, idt := r.login(b, oauth2.SetAuthURLParam("prompt", "login"))
	if e.loginCount() != 2 {
		t.Fatalf("prompt=login: logins %d, want 2", e.loginCount())
	}
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	_ = idt.Claims(&c)
	// max_age: a session older than max_age logs in again; a young one not.
	e.clock.Advance(10 * time.Minute)
	r.login(b, oauth2.SetAuthURLParam("max_age", "3600"))
	if e.loginCount() != 2 {
		t.Fatal("max_age=3600 with a 10-minute-old session logged in again")
	}
	r.login(b, oauth2.SetAuthURLParam("max_age", "60"))
	if e.loginCount() != 3 {
		t.Fatalf("max_age=60 with a 10-minute-old session: logins %d, want 3", e.loginCount())
	}
	// prompt=none without a session: login_required at the app, no page.
	q := r.authorize(e.browser(), oauth2.S256ChallengeOption("v-123456789012345678901234567890123456789012"), oauth2.SetAuthURLParam("prompt", "none"))
	if q.Get("error") != "login_required" || q.Get("state") != "st-1" {
		t.Fatalf("prompt=none: %v", q)
	}
	if e.loginCount() != 3 {
		t.Fatal("prompt=none showed the login")
	}
}

func TestAllowedGroupsAndConnections(t *testing.T) {
	e := newEnv(t, "sqlite")
	ana := e.user("ana@acme.test", "Staff")
	bo := e.user("bo@acme.test", "Contractors")
	other := &gatehouse.Connection{TenantID: e.tenant.ID, Type: gatehouse.ConnMock, Name: "Other", Enabled: true, Config: json.RawMessage(`{}`), JIT: gatehouse.DefaultJITPolicy()}
	e.update(func(tx gatehouse.Tx) error { return tx.CreateConnection(e.ctx, other) })
	a, sec := e.app(gatehouse.App{Name: "Payroll", AllowedGroups: []string{"Staff"}, AllowedConnections: []string{other.ID}})
	r := e.rp(a, sec)

	e.signInAs(ana)
	r.login(e.browser())
	e.mu.Lock()
	last := e.logins[len(e.logins)-1]
	e.mu.Unlock()
	if last.Get("connection") != other.ID || !strings.HasPrefix(last.Get("return_to"), "/t/acme/authorize/resume?ar=") {
		t.Fatalf("login link %v", last)
	}

	// A session through another connection is not enough for this app.
	b := e.browser()
	e.mu.Lock()
	e.loginConn = e.conn.ID
	e.mu.Unlock()
	get(t, b, e.issuer()+"/login") // signs in through the default connection
	before := e.loginCount()
	r.login(b)
	if e.loginCount() != before+1 {
		t.Fatal("session of a connection the app does not allow was accepted")
	}

	// Bo is not in Staff: a clear 403 page, no redirect to the app.
	e.signInAs(bo)
	verifier, _ := pkce()
	resp, body := get(t, e.browser(), r.cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not allowed to use Payroll") || !strings.Contains(body, "it@acme.test") {
		t.Fatalf("not-allowed page: %d %s", resp.StatusCode, body)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		tok, _ := r.login(e.browser())
		refresh := func(rt string) (int, map[string]any) {
			return e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, a.ClientID, sec)
		}
		status, t2 := refresh(tok.RefreshToken)
		if status != 200 || t2["refresh_token"] == tok.RefreshToken || t2["id_token"] == nil {
			t.Fatalf("refresh: %d %v", status, t2)
		}
		rt2 := t2["refresh_token"].(string)
		at2 := t2["access_token"].(string)
		if s, _ := userinfo(t, e.issuer(), at2); s != 200 {
			t.Fatalf("userinfo with refreshed token: %d", s)
		}
		// The first token again: reuse. It fails, and the family is revoked.
		if status, body := refresh(tok.RefreshToken); status != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("reuse: %d %v", status, body)
		}
		if status, body := refresh(rt2); status != 400 {
			t.Fatalf("rotated successor still works after reuse: %d %v", status, body)
		}
		if s, _ := userinfo(t, e.issuer(), at2); s == 200 {
			t.Fatal("access token of a revoked family still works")
		}
		if s, _ := userinfo(t, e.issuer(), tok.AccessToken); s == 200 {
			t.Fatal("first access token of a revoked family still works")
		}
		var events []*gatehouse.AuditEvent
		e.update(func(tx gatehouse.Tx) error {
			var err error
			events, _, err = tx.ListAudit(e.ctx, e.tenant.ID, gatehouse.AuditFilter{Action: "oidc.refresh_token_reused"}, gatehouse.Page{})
			return err
		})
		if len(events) != 1 {
			t.Fatalf("audit events %d", len(events))
		}
		// Another client cannot use Ana's refresh token.
		tok3, _ := r.login(e.browser())
		b2, sec2 := e.app(gatehouse.App{Name: "Other"})
		if status, _ := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok3.RefreshToken}}, b2.ClientID, sec2); status != 400 {
			t.Fatalf("refresh by another client: %d", status)
		}
		// Expired refresh tokens fail.
		e.clock.Advance(DefaultRefreshTokenTTL + time.Minute)
		if status, _ := refresh(tok3.RefreshToken); status != 400 {
			t.Fatalf("expired refresh token: %d", status)
		}
	})
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, "sqlite")
	svc, sec := e.app(gatehouse.App{Name: "Batch"})
	status, body := e.form("/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid email"}}, svc.ClientID, sec)
	if status != 200 || body["access_token"] == nil || body["id_token"] != nil || body["refresh_token"] != nil {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
	at := body["access_token"].(string)
	status, in := e.form("/introspect", url.Values{"token": {at}}, svc.ClientID, sec)
	if status != 200 || in["active"] != true || in["sub"] != svc.ClientID || in["client_id"] != svc.ClientID {
		t.Fatalf("introspect: %d %v", status, in)
	}
	if s, _ := userinfo(t, e.issuer(), at); s == 200 {
		t.Fatal("userinfo for a client token")
	}
	// Wrong secret, public clients, unknown clients.
	if status, body := e.form("/token", url.Values{"grant_type": {"client_credentials"}}, svc.ClientID, sec+"x"); status != 401 && status != 400 {
		t.Fatalf("wrong secret: %d %v", status, body)
	}
	pub, _ := e.app(gatehouse.App{Public: true, RedirectURIs: []string{"https://spa.example/cb"}})
	if status, _ := e.form("/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {pub.ClientID}}, "", ""); status == 200 {
		t.Fatal("public client got client_credentials")
	}
	only, sec2 := e.app(gatehouse.App{Name: "Code only", GrantTypes: []string{"authorization_code"}})
	if status, _ := e.form("/token", url.Values{"grant_type": {"client_credentials"}}, only.ClientID, sec2); status == 200 {
		t.Fatal("client_credentials for an app without that grant")
	}
	for _, g := range []string{"urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange", "password", "implicit"} {
		if status, body := e.form("/token", url.Values{"grant_type": {g}}, svc.ClientID, sec); status != 400 || body["error"] != "unsupported_grant_type" {
			t.Errorf("grant %q: %d %v", g, status, body)
		}
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test", "Staff")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{})
		other, sec2 := e.app(gatehouse.App{Name: "Other"})
		tok, _ := e.rp(a, sec).login(e.browser())

		status, in := e.form("/introspect", url.Values{"token": {tok.AccessToken}}, a.ClientID, sec)
		if status != 200 || in["active"] != true || in["sub"] != ana.ID || in["client_id"] != a.ClientID || in["iss"] != e.issuer() {
			t.Fatalf("introspect: %d %v", status, in)
		}
		// Another app of the tenant: the token is not for it.
		if _, in := e.form("/introspect", url.Values{"token": {tok.AccessToken}}, other.ClientID, sec2); in["active"] != false {
			t.Fatalf("introspect by another audience: %v", in)
		}
		if status, _ := e.form("/introspect", url.Values{"token": {tok.AccessToken}}, a.ClientID, "wrong"); status != 401 {
			t.Fatalf("introspect with a wrong secret: %d", status)
		}
		// Another app cannot revoke it.
		if status, _ := e.form("/revoke", url.Values{"token": {tok.AccessToken}}, other.ClientID, sec2); status != 200 {
			t.Fatalf("revoke by other: %d", status)
		}
		if s, _ := userinfo(t, e.issuer(), tok.AccessToken); s != 200 {
			t.Fatal("another app revoked the token")
		}
		// Its own app revokes the access token.
		if status, _ := e.form("/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}, a.ClientID, sec); status != 200 {
			t.Fatalf("revoke: %d", status)
		}
		req, _ := http.NewRequest(http.MethodGet, e.issuer()+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("revoked access token at userinfo: %v %v", resp, err)
		}
		if _, in := e.form("/introspect", url.Values{"token": {tok.AccessToken}}, a.ClientID, sec); in["active"] != false {
			t.Fatal("revoked access token is active")
		}
		// Revoking the refresh token revokes its grant.
		tok2, _ := e.rp(a, sec).login(e.browser())
		if status, _ := e.form("/revoke", url.Values{"token": {tok2.RefreshToken}}, a.ClientID, sec); status != 200 {
			t.Fatalf("revoke refresh: %d", status)
		}
		if status, _ := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2.RefreshToken}}, a.ClientID, sec); status != 400 {
			t.Fatal("revoked refresh token works")
		}
		if s, _ := userinfo(t, e.issuer(), tok2.AccessToken); s == 200 {
			t.Fatal("access token of a revoked refresh token's grant works")
		}
		// Introspection says so too (RFC 7662 section 2.2).
		if _, in := e.form("/introspect", url.Values{"token": {tok2.AccessToken}}, a.ClientID, sec); in["active"] != false {
			t.Fatal("access token of a revoked grant is active")
		}
		// "grant/<id>" sent as the token is no token of ours: nothing is
		// revoked, and that is no error (RFC 7009 section 2.2).
		tok4, _ := e.rp(a, sec).login(e.browser())
		for _, hint := range []string{"", "access_token"} {
			if status, _ := e.form("/revoke", url.Values{"token": {grantRef + e.atkGrantOf(tok4.AccessToken)}, "token_type_hint": {hint}}, a.ClientID, sec); status != 200 {
				t.Fatalf("revoke grant/…: %d", status)
			}
		}
		if s, _ := userinfo(t, e.issuer(), tok4.AccessToken); s != 200 {
			t.Fatal(`"grant/<id>" revoked a grant`)
		}
		// Unknown tokens are not an error (RFC 7009 section 2.2).
		if status, _ := e.form("/revoke", url.Values{"token": {"nonsense"}}, a.ClientID, sec); status != 200 {
			t.Fatalf("revoke unknown: %d", status)
		}
		// Access tokens expire.
		tok3, _ := e.rp(a, sec).login(e.browser())
		e.clock.Advance(DefaultAccessTokenTTL + time.Second)
		if s, _ := userinfo(t, e.issuer(), tok3.AccessToken); s == 200 {
			t.Fatal("expired access token works")
		}
	})
}

func TestEndSessionAndBackchannelLogout(t *testing.T) {
	engines(t, testEndSessionAndBackchannelLogout)
}

func testEndSessionAndBackchannelLogout(t *testing.T, engine string) {
	e := newEnv(t, engine)
	ana := e.user("ana@acme.test")
	e.signInAs(ana)
	a, sec := e.app(gatehouse.App{PostLogoutRedirectURIs: []string{"https://wiki.example/bye"}, BackchannelLogoutURI: e.srv.URL + "/app/backchannel"})
	b2, sec2 := e.app(gatehouse.App{Name: "CRM", IDTokenSigningAlg: "EdDSA", BackchannelLogoutURI: e.srv.URL + "/app/backchannel"})
	quiet, qsec := e.app(gatehouse.App{Name: "No back-channel"})
	br := e.browser()
	tok, idt := e.rp(a, sec).login(br)
	e.rp(b2, sec2).login(br)
	e.rp(quiet, qsec).login(br)
	var claims struct {
		SID string `json:"sid"`
	}
	_ = idt.Claims(&claims)

	// A post_logout_redirect_uri the app did not register is refused.
	v := url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {"https://evil.example/"}}
	if resp, _ := get(t, br, e.issuer()+"/end_session?"+v.Encode()); resp.StatusCode != 400 {
		t.Fatalf("unregistered post-logout URI: %d", resp.StatusCode)
	}
	v.Set("post_logout_redirect_uri", "https://wiki.example/bye")
	v.Set("state", "bye-1")
	resp, _ := get(t, br, e.issuer()+"/end_session?"+v.Encode())
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://wiki.example/bye?state=bye-1" {
		t.Fatalf("end_session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The browser is signed out: the next authorize goes to login.
	before := e.loginCount()
	e.rp(a, sec).login(br)
	if e.loginCount() != before+1 {
		t.Fatal("session survived end_session")
	}
	e.mu.Lock()
	tokens := append([]string(nil), e.backchannl...)
	e.mu.Unlock()
	if len(tokens) != 2 {
		t.Fatalf("back-channel logout tokens: %d, want 2 (one per app that registered)", len(tokens))
	}
	keys := oidc.NewRemoteKeySet(e.ctx, e.issuer()+"/jwks")
	auds := []string{}
	for _, lt := range tokens {
		payload, err := keys.VerifySignature(e.ctx, lt)
		if err != nil {
			t.Fatalf("logout token signature: %v", err)
		}
		var c map[string]any
		_ = json.Unmarshal(payload, &c)
		if c["sub"] != ana.ID || c["sid"] != claims.SID || c["iss"] != e.issuer() || c["nonce"] != nil {
			t.Fatalf("logout token claims %v", c)
		}
		if _, ok := c["events"].(map[string]any)[backchannelEvent]; !ok {
			t.Fatalf("logout token events %v", c["events"])
		}
		auds = append(auds, c["aud"].(string))
		if !strings.Contains(string(mustHeader(t, lt)), `"typ":"logout+jwt"`) {
			t.Fatalf("logout token header %s", mustHeader(t, lt))
		}
	}
	slices.Sort(auds)
	want := []string{a.ClientID, b2.ClientID}
	slices.Sort(want)
	if !slices.Equal(auds, want) {
		t.Fatalf("logout tokens for %v, want %v", auds, want)
	}
	// Without a hint or a registered URI: the tenant's landing page.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = get(t, noFollow, e.issuer()+"/end_session")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/t/acme/" {
		t.Fatalf("bare end_session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestDiscoveryGolden pins the discovery document's wire format.
func TestDiscoveryGolden(t *testing.T) {
	e := newEnv(t, "sqlite")
	_, body := get(t, http.DefaultClient, e.issuer()+"/.well-known/openid-configuration")
	var v any
	if err := json.Unmarshal([]byte(strings.ReplaceAll(body, e.srv.URL, "https://gatehouse.test")), &v); err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(v, "", "  ")
	got = append(got, '\n')
	path := filepath.Join("testdata", "discovery.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("discovery document changed:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormPostResponseMode(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	a, sec := e.app(gatehouse.App{})
	r := e.rp(a, sec)
	verifier, _ := pkce()
	resp, body := get(t, e.browser(), r.cfg.AuthCodeURL("st-fp", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "form_post")))
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(body, `action="https://wiki.example/cb"`) || !strings.Contains(body, `name="state" value="st-fp"`) ||
		!strings.Contains(csp, "form-action https://wiki.example;") {
		t.Fatalf("form_post: %d %s %s", resp.StatusCode, csp, body)
	}
	i := strings.Index(csp, "'nonce-")
	nonce := csp[i+7 : strings.Index(csp[i:], "';")+i]
	if !strings.Contains(body, `<script nonce="`+nonce+`">`) {
		t.Fatalf("script nonce does not match the policy: %s", body)
	}
	code := body[strings.Index(body, `name="code" value="`)+19:]
	code = code[:strings.Index(code, `"`)]
	if _, err := r.cfg.Exchange(e.ctx, code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchange the form_post code: %v", err)
	}
}

func TestSessionEndedHook(t *testing.T) {
	e := newEnv(t, "sqlite")
	ana := e.user("ana@acme.test")
	e.signInAs(ana)
	a, sec := e.app(gatehouse.App{BackchannelLogoutURI: e.srv.URL + "/app/backchannel"})
	b := e.browser()
	e.rp(a, sec).login(b)
	// The web package's logout: it has the session, ends it, and tells us.
	req, _ := http.NewRequest(http.MethodGet, e.issuer()+"/", nil)
	for _, c := range b.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	sess, _, err := e.sessions.Current(e.ctx, req, e.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.prov.SessionEnded(e.ctx, sess)
	e.mu.Lock()
	n := len(e.backchannl)
	e.mu.Unlock()
	if n != 1 {
		t.Fatalf("logout tokens %d, want 1", n)
	}
}
