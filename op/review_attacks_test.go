package op

// Adversarial review of the token endpoint's own authorization_code and
// refresh_token grants (token.go): each test is an attack through the real
// HTTP handler on SQLite and PostgreSQL, and asserts it is refused with
// OAuth's error JSON (RFC 6749 section 5.2), with the no-cache headers of
// section 5.1, and that nothing is issued (no token in the answer, no new
// row in the store).

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
)

// atkResp is the whole answer of one token request.
type atkResp struct {
	status int
	h      http.Header
	body   map[string]any
}

// atkPost posts body with content type ctype to issuer's path, with HTTP
// Basic credentials when user is set (form-urlencoded first, RFC 6749
// section 2.3.1).
func (e *env) atkPost(issuer, path, ctype, body, user, pass string) atkResp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := atkResp{status: resp.StatusCode, h: resp.Header}
	if json.Unmarshal(raw, &out.body) != nil || out.body == nil {
		out.body = map[string]any{"_body": string(raw)}
	}
	return out
}

// atkToken posts a token request to this tenant's endpoint.
func (e *env) atkToken(v url.Values, user, pass string) atkResp {
	e.t.Helper()
	return e.atkPost(e.issuer(), "/token", "application/x-www-form-urlencoded", v.Encode(), user, pass)
}

// atkIssued counts the access and refresh tokens in the store, revoked or
// not: a refused request must not add any.
func (e *env) atkIssued() int {
	e.t.Helper()
	n := 0
	for _, table := range []string{"op_tokens", "op_refresh_tokens"} {
		var c int
		if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM `+table).Scan(&c); err != nil {
			e.t.Fatal(err)
		}
		n += c
	}
	return n
}

// atkLive counts the unrevoked access and refresh tokens of a grant.
func (e *env) atkLive(grantID string) int {
	e.t.Helper()
	n := 0
	for _, table := range []string{"op_tokens", "op_refresh_tokens"} {
		var c int
		if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM `+table+` WHERE grant_id = $1 AND revoked_at IS NULL`, grantID).Scan(&c); err != nil {
			e.t.Fatal(err)
		}
		n += c
	}
	return n
}

// atkRefused asserts an OAuth refusal: status, error code, the JSON and
// no-cache headers (RFC 6749 sections 5.1 and 5.2), and no token.
func atkRefused(t testing.TB, name string, r atkResp, status int, code string) {
	t.Helper()
	if r.status != status || r.body["error"] != code {
		t.Errorf("%s: %d %v %v, want %d %s", name, r.status, r.body["error"], r.body["error_description"], status, code)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token"} {
		if _, ok := r.body[k]; ok {
			t.Errorf("%s: %s issued", name, k)
		}
	}
	atkNoCache(t, name, r)
	if !strings.HasPrefix(r.h.Get("Content-Type"), "application/json") {
		t.Errorf("%s: Content-Type %q", name, r.h.Get("Content-Type"))
	}
}

func atkNoCache(t testing.TB, name string, r atkResp) {
	t.Helper()
	if r.h.Get("Cache-Control") != "no-store" || r.h.Get("Pragma") != "no-cache" {
		t.Errorf("%s: Cache-Control %q, Pragma %q; want no-store, no-cache", name, r.h.Get("Cache-Control"), r.h.Get("Pragma"))
	}
}

func atkOK(t testing.TB, name string, r atkResp) {
	t.Helper()
	if r.status != 200 || r.body["access_token"] == nil {
		t.Fatalf("%s: %d %v", name, r.status, r.body)
	}
	atkNoCache(t, name, r)
}

// atkCode runs the authorize step in browser b and returns a code and its
// PKCE verifier.
func atkCode(r *rp, b *http.Client) (code, verifier string) {
	verifier, _ = pkce()
	q := r.authorize(b, oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1"))
	if q.Get("code") == "" {
		r.e.t.Fatalf("no code: %v", q)
	}
	return q.Get("code"), verifier
}

func atkCodeForm(r *rp, code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {r.cfg.RedirectURL}, "code_verifier": {verifier}}
}

func atkRefreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

// atkGrantOf is the grant (authorize request id) of an access token.
func (e *env) atkGrantOf(access string) string {
	e.t.Helper()
	plain, err := e.prov.zitadel.Crypto().Decrypt(access)
	if err != nil {
		e.t.Fatal(err)
	}
	id, _, _ := strings.Cut(plain, ":")
	var g string
	if err := e.store.View(e.ctx, func(tx gatehouse.Tx) error {
		tk, err := tx.GetOPToken(e.ctx, e.tenant.ID, id)
		if err == nil {
			g = tk.GrantID
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return g
}

// atkNoUserinfo asserts that userinfo refuses an access token (RFC 6750
// section 3.1: 401).
func (e *env) atkNoUserinfo(name, access string) {
	e.t.Helper()
	if s, _ := userinfo(e.t, e.issuer(), access); s != http.StatusUnauthorized {
		e.t.Errorf("%s: userinfo %d, want 401", name, s)
	}
}

// atkDead asserts that an access token no longer works at userinfo and
// introspection, and a refresh token no longer refreshes.
func (e *env) atkDead(name, access, refresh string, a *gatehouse.App, sec string) {
	e.t.Helper()
	if access != "" {
		e.atkNoUserinfo(name, access)
		if _, in := e.form("/introspect", url.Values{"token": {access}}, a.ClientID, sec); in["active"] != false {
			e.t.Errorf("%s: revoked access token active at introspection: %v", name, in)
		}
	}
	if refresh != "" {
		atkRefused(e.t, name+": refresh", e.atkToken(atkRefreshForm(refresh), a.ClientID, sec), 400, "invalid_grant")
	}
}

// atkRace sends n copies of one request at once and returns how many got
// tokens and the last answer that did; every other answer must be
// invalid_grant.
func atkRace(t testing.TB, n int, send func() atkResp) (wins int, won atkResp) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := send()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case res.status == 200:
				wins++
				won = res
			case res.status != 400 || res.body["error"] != "invalid_grant":
				t.Errorf("concurrent loser: %d %v", res.status, res.body["error"])
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins, won
}

// atkTenant creates another tenant.
func (e *env) atkTenant(slug string) *gatehouse.Tenant {
	e.t.Helper()
	t := &gatehouse.Tenant{Slug: slug, Name: slug}
	e.update(func(tx gatehouse.Tx) error { return tx.CreateTenant(e.ctx, t) })
	return t
}

// atkSetStatus changes a user's status in the store.
func (e *env) atkSetStatus(userID, status string) {
	e.t.Helper()
	e.update(func(tx gatehouse.Tx) error {
		u, err := tx.GetUser(e.ctx, e.tenant.ID, userID)
		if err != nil {
			return err
		}
		u.Status = status
		return tx.UpdateUser(e.ctx, u)
	})
}

// Code replay (RFC 6749 sections 4.1.2 and 10.5): the second use fails and
// revokes what the first issued; the refusal is audited.
func TestAttackCodeReplay(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		code, v := atkCode(r, e.browser())
		first := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
		atkOK(t, "first use", first)
		n := e.atkIssued()
		atkRefused(t, "second use", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")
		if e.atkIssued() != n {
			t.Error("the replay issued tokens")
		}
		e.atkDead("replay", first.body["access_token"].(string), first.body["refresh_token"].(string), a, sec)
		// A third use, long after (the row outlives the code's expiry).
		e.clock.Advance(codeTTL + time.Hour)
		atkRefused(t, "late replay", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")
	})
}

// Twenty redemptions of one code at once: exactly one gets tokens, and
// since the others are replays, the winner's tokens end up revoked
// (RFC 6749 section 10.5).
func TestAttackConcurrentCodeRedemption(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		code, v := atkCode(r, e.browser())
		wins, winner := atkRace(t, 20, func() atkResp { return e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec) })
		if wins != 1 {
			t.Fatalf("%d of 20 concurrent redemptions won, want exactly 1", wins)
		}
		access := winner.body["access_token"].(string)
		if live := e.atkLive(e.atkGrantOf(access)); live != 0 {
			t.Errorf("%d tokens of a code redeemed 20 times are still live", live)
		}
		e.atkDead("concurrent code", access, winner.body["refresh_token"].(string), a, sec)
	})
}

// A code is bound to its client, its tenant and its redirect URI (RFC
// 6749 section 4.1.3), and to its PKCE challenge (RFC 7636 section 4.6).
func TestAttackCodeBinding(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		b, bsec := e.app(gatehouse.App{Name: "Other"}) // same redirect URI
		r := e.rp(a, sec)
		browser := e.browser()

		// Tenant B holds an app with the same client id and a secret the
		// attacker knows.
		globex := e.atkTenant("globex")
		g, gsec := e.app(gatehouse.App{TenantID: globex.ID, ClientID: a.ClientID})
		code, v := atkCode(r, browser)
		n := e.atkIssued()
		atkRefused(t, "tenant A's code at tenant B",
			e.atkPost(e.srv.URL+"/t/globex", "/token", "application/x-www-form-urlencoded", atkCodeForm(r, code, v).Encode(), g.ClientID, gsec), 400, "invalid_grant")
		// Nothing of tenant A was touched: the code still works there.
		atkOK(t, "code after the other tenant's attempt", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec))
		n = e.atkIssued()

		for _, tc := range []struct {
			name       string
			edit       func(url.Values)
			user, pass string
			status     int
			err        string
		}{
			{"redeemed by another app", nil, b.ClientID, bsec, 400, "invalid_grant"},
			{"redirect_uri missing", func(f url.Values) { f.Del("redirect_uri") }, a.ClientID, sec, 400, "invalid_grant"},
			{"redirect_uri different", func(f url.Values) { f.Set("redirect_uri", "https://wiki.example/cb2") }, a.ClientID, sec, 400, "invalid_grant"},
			{"redirect_uri trailing slash", func(f url.Values) { f.Set("redirect_uri", "https://wiki.example/cb/") }, a.ClientID, sec, 400, "invalid_grant"},
			{"verifier missing", func(f url.Values) { f.Del("code_verifier") }, a.ClientID, sec, 400, "invalid_request"},
			{"verifier empty", func(f url.Values) { f.Set("code_verifier", "") }, a.ClientID, sec, 400, "invalid_request"},
			{"verifier wrong", func(f url.Values) { f.Set("code_verifier", f.Get("code_verifier")+"A") }, a.ClientID, sec, 400, "invalid_grant"},
			{"verifier of another request", func(f url.Values) { v2, _ := pkce(); f.Set("code_verifier", v2) }, a.ClientID, sec, 400, "invalid_grant"},
			{"code_challenge_method=plain at the token endpoint", func(f url.Values) {
				f.Set("code_challenge_method", "plain")
				f.Set("code_verifier", strings.Repeat("x", 43))
			}, a.ClientID, sec, 400, "invalid_grant"},
			{"code missing", func(f url.Values) { f.Del("code") }, a.ClientID, sec, 400, "invalid_request"},
			{"code unknown", func(f url.Values) { f.Set("code", secret.NewToken("")) }, a.ClientID, sec, 400, "invalid_grant"},
			{"refresh token as code", func(f url.Values) { f.Set("code", "gh_rt_x") }, a.ClientID, sec, 400, "invalid_grant"},
		} {
			code, v := atkCode(r, browser)
			f := atkCodeForm(r, code, v)
			if tc.edit != nil {
				tc.edit(f)
			}
			atkRefused(t, tc.name, e.atkToken(f, tc.user, tc.pass), tc.status, tc.err)
		}
		// The plain-method downgrade: the S256 challenge itself as the
		// verifier.
		verifier, challenge := pkce()
		q := r.authorize(browser, oauth2.S256ChallengeOption(verifier))
		atkRefused(t, "challenge as a plain verifier", e.atkToken(atkCodeForm(r, q.Get("code"), challenge), a.ClientID, sec), 400, "invalid_grant")
		if e.atkIssued() != n {
			t.Errorf("refused code redemptions issued %d tokens", e.atkIssued()-n)
		}
	})
}

// A code_verifier is 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636
// section 4.1): a verifier outside that, even one whose S256 hash matches
// a challenge the client computed from it, is refused as malformed
// (invalid_request, RFC 6749 section 5.2), as fosite and node
// oidc-provider refuse it; a short verifier could be searched for from
// the challenge seen in the authorize URL.
func TestAttackPKCEVerifierFormat(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, _ := e.app(gatehouse.App{Public: true, RedirectURIs: []string{"https://spa.example/cb"}})
		r := e.rp(a, "")
		b := e.browser()
		s256 := func(v string) string {
			d := sha256.Sum256([]byte(v))
			return base64.RawURLEncoding.EncodeToString(d[:])
		}
		try := func(verifier string) atkResp {
			q := r.authorize(b, oauth2.SetAuthURLParam("code_challenge", s256(verifier)), oauth2.SetAuthURLParam("code_challenge_method", "S256"))
			f := atkCodeForm(r, q.Get("code"), verifier)
			f.Set("client_id", a.ClientID)
			return e.atkToken(f, "", "")
		}
		n := e.atkIssued()
		for name, v := range map[string]string{
			"1 character":          "a",
			"42 characters":        strings.Repeat("a", 42),
			"129 characters":       strings.Repeat("a", 129),
			"space":                strings.Repeat("a", 42) + " ",
			"plus and slash":       strings.Repeat("a", 41) + "+/",
			"non-ASCII":            strings.Repeat("a", 42) + "é",
			"percent-encoded byte": strings.Repeat("a", 42) + "%",
		} {
			atkRefused(t, "verifier "+name, try(v), 400, "invalid_request")
		}
		if e.atkIssued() != n {
			t.Error("a malformed verifier got tokens")
		}
		// The bounds themselves and every allowed character work.
		for _, v := range []string{strings.Repeat("a", 43), strings.Repeat("Zz09-._~", 16)} {
			atkOK(t, "verifier of "+v, try(v))
		}
	})
}

// Client authentication (RFC 6749 sections 2.3 and 3.2.1): a refused
// client spends nothing and revokes nothing, so whoever holds a stolen
// code without the client's secret can neither burn it nor, after the
// app redeemed it, revoke the app's tokens.
func TestAttackClientAuthentication(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		b, bsec := e.app(gatehouse.App{Name: "Other"})
		pub, _ := e.app(gatehouse.App{Name: "SPA", Public: true, RedirectURIs: []string{"https://wiki.example/cb"}})
		r := e.rp(a, sec)
		code, v := atkCode(r, e.browser())
		f := atkCodeForm(r, code, v)
		with := func(extra ...string) url.Values {
			out := url.Values{}
			for k, vs := range f {
				out[k] = vs
			}
			for i := 0; i+1 < len(extra); i += 2 {
				out.Set(extra[i], extra[i+1])
			}
			return out
		}
		n := e.atkIssued()
		for _, tc := range []struct {
			name       string
			form       url.Values
			user, pass string
			status     int
			err        string
		}{
			{"no authentication", f, "", "", 401, "invalid_client"},
			{"wrong secret (basic)", f, a.ClientID, sec + "x", 401, "invalid_client"},
			{"wrong secret (post)", with("client_id", a.ClientID, "client_secret", "nope"), "", "", 401, "invalid_client"},
			{"empty secret (basic)", f, a.ClientID, "", 401, "invalid_client"},
			{"secret of another app", f, a.ClientID, bsec, 401, "invalid_client"},
			{"confidential app posing as public", with("client_id", a.ClientID), "", "", 401, "invalid_client"},
			{"unknown client", f, "nobody", "x", 401, "invalid_client"},
			{"basic and post, disagreeing", with("client_secret", "nope"), a.ClientID, sec, 400, "invalid_request"},
			{"basic and post, agreeing", with("client_id", a.ClientID, "client_secret", sec), a.ClientID, sec, 400, "invalid_request"},
			{"client_id in body differs from basic", with("client_id", b.ClientID), a.ClientID, sec, 400, "invalid_request"},
			{"client_id repeated", with(), "", "", 400, "invalid_request"},
			{"client_secret repeated", with(), "", "", 400, "invalid_request"},
			{"private_key_jwt", with("client_id", a.ClientID, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", "x.y.z"), "", "", 401, "invalid_client"},
		} {
			form := tc.form
			switch tc.name {
			case "client_id repeated":
				form["client_id"] = []string{a.ClientID, a.ClientID}
				form["client_secret"] = []string{sec}
			case "client_secret repeated":
				form["client_id"] = []string{a.ClientID}
				form["client_secret"] = []string{"nope", sec}
			}
			res := e.atkToken(form, tc.user, tc.pass)
			atkRefused(t, tc.name, res, tc.status, tc.err)
			// An unknown client and a wrong secret read the same (RFC 6749
			// section 5.2): nothing tells which client ids exist.
			if tc.err == "invalid_client" && tc.name != "private_key_jwt" && res.body["error_description"] != errClientAuth().Description {
				t.Errorf("%s: description %q", tc.name, res.body["error_description"])
			}
		}
		// A public client naming the code's client without its secret
		// is an unauthenticated caller: the same.
		atkRefused(t, "public app's id with the code", e.atkToken(with("client_id", pub.ClientID), "", ""), 400, "invalid_grant")
		if e.atkIssued() != n {
			t.Error("a refused client got tokens")
		}
		// The public app's attempt spent the code (as zitadel did for
		// public clients: whoever may name a public client may try); a new
		// code for the rest.
		code, v = atkCode(r, e.browser())
		f = atkCodeForm(r, code, v)
		atkRefused(t, "wrong secret", e.atkToken(f, a.ClientID, "nope"), 401, "invalid_client")
		atkRefused(t, "no secret", e.atkToken(with("client_id", a.ClientID), "", ""), 401, "invalid_client")
		// None of the refused clients spent the code: the app redeems it.
		first := e.atkToken(f, a.ClientID, sec)
		atkOK(t, "the app after the refused attempts", first)
		// And a replay by someone without the secret revokes nothing.
		atkRefused(t, "replay without the secret", e.atkToken(f, a.ClientID, "nope"), 401, "invalid_client")
		if s, _ := userinfo(t, e.issuer(), first.body["access_token"].(string)); s != 200 {
			t.Error("an unauthenticated replay revoked the app's tokens")
		}
		// A replay by the authenticated app revokes them (section 10.5).
		atkRefused(t, "replay by the app", e.atkToken(f, a.ClientID, sec), 400, "invalid_grant")
		e.atkDead("replay by the app", first.body["access_token"].(string), first.body["refresh_token"].(string), a, sec)

		// A public app gains nothing from a made-up secret: PKCE still
		// binds its code.
		rp := e.rp(pub, "")
		code, v = atkCode(rp, e.browser())
		pf := atkCodeForm(rp, code, "")
		pf.Del("code_verifier")
		atkRefused(t, "public app with a secret and no verifier", e.atkToken(pf, pub.ClientID, "made-up"), 400, "invalid_request")
	})
}

// The lifecycle around a code: expiry, the user, the app and its secret.
func TestAttackCodeLifecycle(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		b := e.browser()
		n := e.atkIssued()

		// Expired: codeTTL after it was issued, not a moment later.
		code, v := atkCode(r, b)
		e.clock.Advance(codeTTL)
		atkRefused(t, "expired code", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")

		// Deactivated, then deleted, between authorize and token.
		code, v = atkCode(r, b)
		e.atkSetStatus(ana.ID, gatehouse.StatusDeactivated)
		atkRefused(t, "code of a deactivated user", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")
		e.atkSetStatus(ana.ID, gatehouse.StatusActive)
		code, v = atkCode(r, e.browser())
		e.update(func(tx gatehouse.Tx) error { return tx.DeleteUser(e.ctx, e.tenant.ID, ana.ID) })
		atkRefused(t, "code of a deleted user", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")
		ana = e.user("ana2@acme.test")
		e.signInAs(ana)

		// The secret rotated between authorize and token: the old secret
		// stops at once, the new one redeems the code.
		code, v = atkCode(r, e.browser())
		newSec := secret.NewToken("")
		e.update(func(tx gatehouse.Tx) error {
			app, err := tx.GetApp(e.ctx, e.tenant.ID, a.ID)
			if err != nil {
				return err
			}
			app.SecretHash = secret.Digest(newSec)
			return tx.UpdateApp(e.ctx, app)
		})
		atkRefused(t, "old secret after rotation", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 401, "invalid_client")
		if e.atkIssued() != n {
			t.Error("a refused code issued tokens")
		}
		issued := e.atkToken(atkCodeForm(r, code, v), a.ClientID, newSec)
		atkOK(t, "new secret after rotation", issued)
		n = e.atkIssued()

		// The app deleted between authorize and token.
		code, v = atkCode(r, e.browser())
		e.update(func(tx gatehouse.Tx) error { return tx.DeleteApp(e.ctx, e.tenant.ID, a.ID) })
		atkRefused(t, "code of a deleted app", e.atkToken(atkCodeForm(r, code, v), a.ClientID, newSec), 401, "invalid_client")
		if e.atkIssued() != n {
			t.Error("a deleted app got tokens")
		}
		// The deletion (tx.DeleteApp, as the console and the API make it)
		// revoked what the app held: userinfo does not read the app.
		e.atkNoUserinfo("an access token of a deleted app", issued.body["access_token"].(string))
		if live := e.atkLive(e.atkGrantOf(issued.body["access_token"].(string))); live != 0 {
			t.Errorf("%d tokens of a deleted app are live", live)
		}
	})
}

// Refresh tokens (RFC 6749 sections 6 and 10.4, RFC 9700 section 4.14).
func TestAttackRefreshTokens(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{RefreshTokenTTL: 3600})
		b, bsec := e.app(gatehouse.App{Name: "Other"})
		r := e.rp(a, sec, "openid", "email", "offline_access")
		login := func() atkResp {
			code, v := atkCode(r, e.browser())
			res := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
			atkOK(t, "login", res)
			return res
		}
		rtOf := func(res atkResp) string { return res.body["refresh_token"].(string) }
		refresh := func(rt string, extra ...string) atkResp {
			f := atkRefreshForm(rt)
			for i := 0; i+1 < len(extra); i += 2 {
				f.Set(extra[i], extra[i+1])
			}
			return e.atkToken(f, a.ClientID, sec)
		}

		// Reuse of a rotated token revokes the whole family.
		first := login()
		second := refresh(rtOf(first))
		atkOK(t, "rotation", second)
		third := refresh(rtOf(second))
		atkOK(t, "rotation", third)
		atkRefused(t, "reuse of a rotated token", refresh(rtOf(first)), 400, "invalid_grant")
		for i, res := range []atkResp{first, second, third} {
			e.atkDead("family member "+string(rune('1'+i)), res.body["access_token"].(string), rtOf(res), a, sec)
		}
		if live := e.atkLive(e.atkGrantOf(first.body["access_token"].(string))); live != 0 {
			t.Errorf("%d tokens of a reused family are live", live)
		}

		// Twenty uses of one token at once: at most one wins, and the
		// others are reuse, which revokes the winner's new tokens too.
		res := login()
		wins, won := atkRace(t, 20, func() atkResp { return refresh(rtOf(res)) })
		if wins != 1 {
			t.Fatalf("%d of 20 concurrent refreshes won, want 1", wins)
		}
		e.atkDead("concurrent refresh winner", won.body["access_token"].(string), rtOf(won), a, sec)

		// Another app's token, another tenant's: refused and not spent.
		res = login()
		n := e.atkIssued()
		atkRefused(t, "app A's token used by app B", e.atkToken(atkRefreshForm(rtOf(res)), b.ClientID, bsec), 400, "invalid_grant")
		globex := e.atkTenant("globex")
		g, gsec := e.app(gatehouse.App{TenantID: globex.ID, ClientID: a.ClientID})
		atkRefused(t, "tenant A's token at tenant B",
			e.atkPost(e.srv.URL+"/t/globex", "/token", "application/x-www-form-urlencoded", atkRefreshForm(rtOf(res)).Encode(), g.ClientID, gsec), 400, "invalid_grant")
		// Unauthenticated or wrongly authenticated: nothing spent.
		atkRefused(t, "refresh with a wrong secret", e.atkToken(atkRefreshForm(rtOf(res)), a.ClientID, "nope"), 401, "invalid_client")
		atkRefused(t, "refresh without a client", e.atkToken(atkRefreshForm(rtOf(res)), "", ""), 401, "invalid_client")
		// Scope escalation (RFC 6749 section 6: no scope not originally
		// granted), also unspent.
		for _, s := range []string{"openid email profile", "groups", "openid email offline_access groups", "openid  email offline_access admin"} {
			atkRefused(t, "scope escalation to "+s, refresh(rtOf(res), "scope", s), 400, "invalid_scope")
		}
		atkRefused(t, "access token as refresh token", refresh(res.body["access_token"].(string)), 400, "invalid_grant")
		atkRefused(t, "ID token as refresh token", refresh(res.body["id_token"].(string)), 400, "invalid_grant")
		atkRefused(t, "refresh_token missing", e.atkToken(url.Values{"grant_type": {"refresh_token"}}, a.ClientID, sec), 400, "invalid_request")
		if e.atkIssued() != n {
			t.Error("refused refreshes issued tokens")
		}
		// A narrower scope is allowed; the new refresh token keeps the
		// grant's scopes, so a later refresh may ask for them again.
		narrow := refresh(rtOf(res), "scope", "openid")
		atkOK(t, "narrower scope", narrow)
		if narrow.body["scope"] != "openid" {
			t.Errorf("narrowed scope %v", narrow.body["scope"])
		}
		if s, body := userinfo(t, e.issuer(), narrow.body["access_token"].(string)); s != 200 || body["email"] != nil {
			t.Errorf("narrowed access token at userinfo: %d %v", s, body)
		}
		wide := refresh(rtOf(narrow), "scope", "openid email")
		atkOK(t, "the grant's scopes again", wide)

		// Expired: RefreshTokenTTL after it was issued, not a moment later.
		e.clock.Advance(time.Hour)
		atkRefused(t, "expired refresh token", refresh(rtOf(wide)), 400, "invalid_grant")

		// The user deactivated, then deleted; the app deleted.
		res = login()
		e.atkSetStatus(ana.ID, gatehouse.StatusDeactivated)
		atkRefused(t, "refresh of a deactivated user", refresh(rtOf(res)), 400, "invalid_grant")
		e.update(func(tx gatehouse.Tx) error { return tx.DeleteUser(e.ctx, e.tenant.ID, ana.ID) })
		atkRefused(t, "refresh of a deleted user", refresh(rtOf(res)), 400, "invalid_grant")
		e.signInAs(e.user("bea@acme.test"))
		res = login()
		e.update(func(tx gatehouse.Tx) error { return tx.DeleteApp(e.ctx, e.tenant.ID, a.ID) })
		atkRefused(t, "refresh of a deleted app", refresh(rtOf(res)), 401, "invalid_client")
		e.atkNoUserinfo("an access token of a deleted app", res.body["access_token"].(string))
	})
}

// The ID token of both grants: issuer of the tenant, audience and azp the
// client, the nonce of the authorize request, auth_time, at_hash of the
// access token, signed with the tenant's key of the app's algorithm under
// a kid the tenant's JWKS (and no other tenant's) publishes.
func TestAttackIDTokenClaims(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		e.atkTenant("globex")
		// An algorithm the app could not have registered (the API refuses
		// it: ValidSigningAlg) but the store holds signs with RS256, never
		// with none or a MAC.
		for stored, alg := range map[string]string{"RS256": "RS256", "ES256": "ES256", "EdDSA": "EdDSA", "none": "RS256", "HS256": "RS256"} {
			a, sec := e.app(gatehouse.App{Name: stored, IDTokenSigningAlg: stored})
			r := e.rp(a, sec)
			code, v := atkCode(r, e.browser())
			before := time.Now().Add(-time.Minute).Unix()
			res := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
			atkOK(t, stored, res)
			rt := res.body["refresh_token"].(string)
			ref := e.atkToken(atkRefreshForm(rt), a.ClientID, sec)
			atkOK(t, stored+" refresh", ref)
			for grant, body := range map[string]map[string]any{"code": res.body, "refresh": ref.body} {
				name := stored + " " + grant
				raw := body["id_token"].(string)
				if _, err := r.verifier.Verify(e.ctx, raw); err != nil {
					t.Errorf("%s: ID token does not verify against the tenant's JWKS: %v", name, err)
				}
				jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
				if err != nil {
					t.Fatal(err)
				}
				hdr := jws.Signatures[0].Header
				kids := jwksKids(t, e)
				if hdr.Algorithm != alg || hdr.KeyID == "" || kids[hdr.KeyID] != alg {
					t.Errorf("%s: header alg %s kid %q (JWKS %v)", name, hdr.Algorithm, hdr.KeyID, kids)
				}
				resp, gj := get(t, http.DefaultClient, e.srv.URL+"/t/globex/jwks")
				if resp.StatusCode != 200 || strings.Contains(gj, hdr.KeyID) {
					t.Errorf("%s: kid %s in another tenant's JWKS", name, hdr.KeyID)
				}
				var c map[string]any
				_ = json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c)
				aud, _ := c["aud"].([]any)
				if c["iss"] != e.issuer() || c["sub"] != ana.ID || len(aud) != 1 || aud[0] != a.ClientID || c["azp"] != a.ClientID {
					t.Errorf("%s: iss/sub/aud/azp %v", name, c)
				}
				if at, _ := c["auth_time"].(float64); int64(at) < before || int64(at) > time.Now().Unix() {
					t.Errorf("%s: auth_time %v", name, c["auth_time"])
				}
				if exp, _ := c["exp"].(float64); int64(exp) <= time.Now().Unix() || int64(exp) > time.Now().Add(DefaultIDTokenTTL+time.Minute).Unix() {
					t.Errorf("%s: exp %v", name, c["exp"])
				}
				if grant == "code" && c["nonce"] != "n-1" {
					t.Errorf("%s: nonce %v", name, c["nonce"])
				}
				if grant == "refresh" && c["nonce"] != nil && c["nonce"] != "n-1" {
					t.Errorf("%s: nonce %v", name, c["nonce"])
				}
				access := body["access_token"].(string)
				want, _ := oidc.ClaimHash(access, jose.SignatureAlgorithm(alg))
				if alg != "EdDSA" {
					// Independently of zitadel: the left half of SHA-256
					// (OpenID Connect Core section 3.1.3.6).
					d := sha256.Sum256([]byte(access))
					want = base64.RawURLEncoding.EncodeToString(d[:16])
				}
				if c["at_hash"] != want {
					t.Errorf("%s: at_hash %v, want %s", name, c["at_hash"], want)
				}
			}
		}
	})
}

// Parameters and the request itself (RFC 6749 sections 3.2 and 5.2).
func TestAttackTokenRequestShape(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		b := e.browser()
		n := e.atkIssued()
		form := "application/x-www-form-urlencoded"
		for _, tc := range []struct {
			name, ctype, body string
			status            int
			err               string
		}{
			{"grant_type missing", form, "", 400, "invalid_request"},
			{"grant_type empty", form, "grant_type=", 400, "invalid_request"},
			{"grant_type password", form, "grant_type=password&username=ana&password=x", 400, "unsupported_grant_type"},
			{"grant_type implicit", form, "grant_type=implicit", 400, "unsupported_grant_type"},
			{"grant_type jwt-bearer", form, "grant_type=" + url.QueryEscape("urn:ietf:params:oauth:grant-type:jwt-bearer") + "&assertion=x.y.z", 400, "unsupported_grant_type"},
			{"grant_type token-exchange", form, "grant_type=" + url.QueryEscape("urn:ietf:params:oauth:grant-type:token-exchange"), 400, "unsupported_grant_type"},
			{"grant_type device_code", form, "grant_type=" + url.QueryEscape("urn:ietf:params:oauth:grant-type:device_code"), 400, "unsupported_grant_type"},
			{"grant_type case", form, "grant_type=Authorization_Code", 400, "unsupported_grant_type"},
			{"grant_type repeated, client_credentials first", form, "grant_type=client_credentials&grant_type=authorization_code", 400, "invalid_request"},
			{"grant_type repeated, same value", form, "grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request"},
			{"JSON body", "application/json", `{"grant_type":"client_credentials"}`, 400, "invalid_request"},
			{"no content type", "", "grant_type=client_credentials", 400, "invalid_request"},
			{"oversized body", form, "grant_type=client_credentials&pad=" + strings.Repeat("x", MaxRequestBytes), 400, "invalid_request"},
			{"malformed form", form, "grant_type=client_credentials&%zz", 400, "invalid_request"},
		} {
			atkRefused(t, tc.name, e.atkPost(e.issuer(), "/token", tc.ctype, tc.body, a.ClientID, sec), tc.status, tc.err)
		}
		// Each of the grants' parameters repeated.
		for _, p := range []string{"grant_type", "code", "redirect_uri", "code_verifier"} {
			code, v := atkCode(r, b)
			f := atkCodeForm(r, code, v)
			f[p] = append(f[p], f.Get(p))
			atkRefused(t, p+" repeated", e.atkToken(f, a.ClientID, sec), 400, "invalid_request")
		}
		if e.atkIssued() != n {
			t.Error("malformed requests issued tokens")
		}
		// GET is not a token request.
		resp, _ := get(t, http.DefaultClient, e.issuer()+"/token?grant_type=client_credentials")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /token: %d", resp.StatusCode)
		}
		// Successful answers of every grant are not cached either.
		code, v := atkCode(r, b)
		res := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
		atkOK(t, "code grant", res)
		atkOK(t, "refresh grant", e.atkToken(atkRefreshForm(res.body["refresh_token"].(string)), a.ClientID, sec))
		atkOK(t, "client_credentials grant", e.atkToken(url.Values{"grant_type": {"client_credentials"}}, a.ClientID, sec))
		// And zitadel's own refusals (client_credentials) are not either.
		atkRefused(t, "client_credentials wrong secret", e.atkToken(url.Values{"grant_type": {"client_credentials"}}, a.ClientID, "nope"), 401, "invalid_client")
	})
}

// Access tokens work at userinfo and introspection of their own tenant
// only, and introspection answers only the client the token was issued to.
func TestAttackAccessTokenScope(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		b, bsec := e.app(gatehouse.App{Name: "Other"})
		globex := e.atkTenant("globex")
		g, gsec := e.app(gatehouse.App{TenantID: globex.ID, ClientID: a.ClientID})
		r := e.rp(a, sec)
		code, v := atkCode(r, e.browser())
		res := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
		atkOK(t, "login", res)
		access := res.body["access_token"].(string)
		gIssuer := e.srv.URL + "/t/globex"
		if s, _ := userinfo(t, e.issuer(), access); s != 200 {
			t.Fatalf("userinfo at the token's tenant: %d", s)
		}
		if s, _ := userinfo(t, gIssuer, access); s != http.StatusUnauthorized {
			t.Errorf("userinfo at another tenant: %d", s)
		}
		if _, in := e.post(gIssuer, "/introspect", url.Values{"token": {access}}, g.ClientID, gsec); in["active"] != false {
			t.Errorf("introspection at another tenant: %v", in)
		}
		if _, in := e.form("/introspect", url.Values{"token": {access}}, b.ClientID, bsec); in["active"] != false {
			t.Errorf("introspection by another app: %v", in)
		}
		if _, in := e.form("/introspect", url.Values{"token": {access}}, a.ClientID, sec); in["active"] != true {
			t.Errorf("introspection by the app: %v", in)
		}
		// The refresh token and the ID token are not access tokens.
		for name, tok := range map[string]string{"refresh token": res.body["refresh_token"].(string), "ID token": res.body["id_token"].(string)} {
			if s, _ := userinfo(t, e.issuer(), tok); s != http.StatusUnauthorized {
				t.Errorf("%s at userinfo: %d", name, s)
			}
		}
	})
}

// The per-replica tenant cache (tenants.go) keeps a tenant at most
// tenantTTL after another replica deleted it, and within that bound a
// deleted tenant's apps, codes and tokens are gone with it: no grant
// succeeds even while its slug still resolves.
func TestAttackDeletedTenantThroughCache(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		code, v := atkCode(r, e.browser())
		res := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
		atkOK(t, "login", res)
		code, v = atkCode(r, e.browser())
		// Another replica's write: this process's generation stands still.
		var gen atomic.Uint64
		e.prov.tenants.gen = gen.Load
		disc := func() int {
			resp, _ := get(t, http.DefaultClient, e.issuer()+"/.well-known/openid-configuration")
			return resp.StatusCode
		}
		if disc() != 200 {
			t.Fatal("discovery")
		}
		deleted := e.clock.Now()
		if _, err := e.store.DB().ExecContext(e.ctx, `DELETE FROM tenants WHERE id = $1`, e.tenant.ID); err != nil {
			t.Fatal(err)
		}
		// The slug still resolves from the cache...
		if disc() != 200 {
			t.Log("the deleted tenant was not served from the cache (entry older than expected)")
		}
		// ...but nothing of the tenant works through it.
		atkRefused(t, "refresh at a deleted tenant", e.atkToken(atkRefreshForm(res.body["refresh_token"].(string)), a.ClientID, sec), 401, "invalid_client")
		atkRefused(t, "code at a deleted tenant", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 401, "invalid_client")
		if s, _ := userinfo(t, e.issuer(), res.body["access_token"].(string)); s == 200 {
			t.Error("userinfo at a deleted tenant")
		}
		// The bound, as the cache's comment states it: tenantTTL.
		e.clock.Advance(tenantTTL - e.clock.Now().Sub(deleted))
		if disc() != 404 {
			t.Errorf("a tenant deleted elsewhere still resolves %v after the deletion (tenantTTL %v)", e.clock.Now().Sub(deleted), tenantTTL)
		}
		if got := tenantTTL; got > time.Second {
			t.Errorf("tenantTTL %v, the documented bound is 1 s", got)
		}
	})
}

// The token endpoint never takes its app from a cache (only the authorize
// endpoint does, apps.go): one deleted by another replica stops getting
// tokens at the next request, before any cache could expire.
func TestAttackAppDeletedElsewhere(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		code, v := atkCode(r, e.browser())
		res := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
		atkOK(t, "login", res)
		var gen atomic.Uint64
		e.prov.tenants.gen = gen.Load
		atkOK(t, "client_credentials", e.atkToken(url.Values{"grant_type": {"client_credentials"}}, a.ClientID, sec))
		if _, err := e.store.DB().ExecContext(e.ctx, `DELETE FROM apps WHERE id = $1`, a.ID); err != nil {
			t.Fatal(err)
		}
		atkRefused(t, "refresh of an app deleted elsewhere", e.atkToken(atkRefreshForm(res.body["refresh_token"].(string)), a.ClientID, sec), 401, "invalid_client")
		atkRefused(t, "client_credentials of an app deleted elsewhere", e.atkToken(url.Values{"grant_type": {"client_credentials"}}, a.ClientID, sec), 401, "invalid_client")
	})
}

// A code issued in a browser session that is then signed out is refused
// (RFC 6749 section 4.1.2 leaves the code's life to the server; Keycloak
// binds codes to the user session): both sign-out paths, end_session and
// the web logout's SessionEnded.
func TestAttackCodeAfterSignOut(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		n := e.atkIssued()

		b := e.browser()
		code, v := atkCode(r, b)
		resp, _ := get(t, b, e.issuer()+"/end_session")
		if resp.StatusCode >= 500 {
			t.Fatalf("end_session: %d", resp.StatusCode)
		}
		atkRefused(t, "code after end_session", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")

		b = e.browser()
		code, v = atkCode(r, b)
		other, ov := atkCode(r, e.browser()) // another session's code
		req, _ := http.NewRequest(http.MethodGet, e.issuer()+"/", nil)
		for _, c := range b.Jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		sess, _, err := e.sessions.Current(e.ctx, req, e.tenant.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.sessions.Discard(e.ctx, req); err != nil {
			t.Fatal(err)
		}
		e.prov.SessionEnded(e.ctx, sess)
		atkRefused(t, "code after the web logout", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")
		if e.atkIssued() != n {
			t.Error("a signed-out session's code got tokens")
		}
		// Another session's code is untouched.
		atkOK(t, "another session's code", e.atkToken(atkCodeForm(r, other, ov), a.ClientID, sec))
	})
}

// Public clients authenticate by client_id alone (RFC 6749 section 2.1):
// one public app cannot refresh another's token by naming itself, and the
// attempt does not spend it. An app restricted to groups the user left
// stops refreshing at once, with invalid_grant.
func TestAttackPublicRefreshAndGroups(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test", "Staff")
		e.signInAs(ana)
		spa, _ := e.app(gatehouse.App{Name: "SPA", Public: true, RedirectURIs: []string{"https://spa.example/cb"}})
		evil, _ := e.app(gatehouse.App{Name: "Evil SPA", Public: true, RedirectURIs: []string{"https://evil.example/cb"}})
		r := e.rp(spa, "")
		code, v := atkCode(r, e.browser())
		f := atkCodeForm(r, code, v)
		f.Set("client_id", spa.ClientID)
		res := e.atkToken(f, "", "")
		atkOK(t, "public login", res)
		rt := res.body["refresh_token"].(string)
		steal := atkRefreshForm(rt)
		steal.Set("client_id", evil.ClientID)
		atkRefused(t, "public app B with app A's refresh token", e.atkToken(steal, "", ""), 400, "invalid_grant")
		own := atkRefreshForm(rt)
		own.Set("client_id", spa.ClientID)
		atkOK(t, "app A's own refresh after B's attempt", e.atkToken(own, "", ""))

		// Groups: the confidential app admits Staff only.
		a, sec := e.app(gatehouse.App{Name: "Staff wiki", AllowedGroups: []string{"Staff"}})
		rc := e.rp(a, sec)
		code, v = atkCode(rc, e.browser())
		res = e.atkToken(atkCodeForm(rc, code, v), a.ClientID, sec)
		atkOK(t, "staff login", res)
		e.update(func(tx gatehouse.Tx) error {
			g, err := tx.GetGroupByName(e.ctx, e.tenant.ID, "Staff")
			if err != nil {
				return err
			}
			return tx.RemoveMembership(e.ctx, e.tenant.ID, g.ID, ana.ID, gatehouse.ManagedByAdmin)
		})
		// invalid_grant, not access_denied: the token endpoint answers
		// with RFC 6749 section 5.2's errors.
		atkRefused(t, "refresh after leaving the app's group", e.atkToken(atkRefreshForm(res.body["refresh_token"].(string)), a.ClientID, sec), 400, "invalid_grant")
	})
}
