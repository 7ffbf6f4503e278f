package op

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	"golang.org/x/oauth2"
)

// noFollow is a browser of e that stops at the first redirect.
func (e *env) noFollow() *http.Client {
	b := e.browser()
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return b
}

// sealedReturn runs an authorize request without a session and returns
// the login's return address (the sealed resume path).
func (e *env) sealedReturn(authURL string) string {
	e.t.Helper()
	rt := e.loginReturn(authURL)
	if !strings.Contains(rt, "/authorize/resume?ar=") {
		e.t.Fatalf("return address %q is no sealed request", rt)
	}
	return rt
}

func (e *env) authRequestRows() int {
	e.t.Helper()
	var n int
	if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM op_auth_requests`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// answer runs AnswerLogin for user with a new session, as the login's
// transaction would, and returns where it sends the browser.
func (e *env) answer(t *gatehouse.Tenant, u *gatehouse.User, returnTo string) string {
	e.t.Helper()
	next, err := e.answerIn(t, u, returnTo)
	if err != nil {
		e.t.Fatal(err)
	}
	return next
}

// TestSealedAuthorizeRequest: an authorize request travels sealed in the
// login's return address and is written only with its code. A forged,
// tampered, truncated, foreign or expired seal is refused at resume (a
// page, never the app: the redirect URI inside cannot be trusted) and by
// AnswerLogin; a request is answered with one code at most, however often
// its resume URL or a login returning to it is replayed (RFC 6749 section
// 4.1.2: a code is single use, and here so is the request behind it).
func TestSealedAuthorizeRequest(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		verifier, _ := pkce()
		authURL := r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1"))
		rt := e.sealedReturn(authURL)
		if n := e.authRequestRows(); n != 0 {
			t.Fatalf("authorize wrote %d rows", n)
		}

		// Another tenant's sealed request, and one sealed under another
		// root key.
		globex := &gatehouse.Tenant{Slug: "globex", Name: "Globex"}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateTenant(e.ctx, globex) })
		g, _ := e.app(gatehouse.App{TenantID: globex.ID, RedirectURIs: []string{"https://wiki.example/cb"}})
		_, challenge := pkce()
		gq := url.Values{"client_id": {g.ClientID}, "redirect_uri": {g.RedirectURIs[0]}, "response_type": {"code"}, "scope": {"openid"},
			"state": {"s"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		grt := e.sealedReturn(e.srv.URL + "/t/globex/authorize?" + gq.Encode())
		_, gar, _ := strings.Cut(grt, "?ar=")
		kr2, _ := secret.NewKeyring("k2", []byte("fedcba9876543210fedcba9876543210"))
		other, _ := newRequestSealer(kr2)
		prefix, ar, _ := strings.Cut(rt, "?ar=")
		prefix += "?ar="
		opened, err := e.prov.requests.open(e.tenant.ID, ar, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		forged, _ := other.seal(opened)
		random := make([]byte, 300)
		_, _ = rand.Read(random)
		flip := []byte(ar)
		flip[len(flip)/2] ^= 1
		if flip[len(flip)/2] == '-'^1 || flip[len(flip)/2] == '_'^1 {
			flip[len(flip)/2] = 'A'
		}

		bad := []struct {
			name, returnTo string
			advance        time.Duration
		}{
			{"random bytes", prefix + base64.RawURLEncoding.EncodeToString(random), 0},
			{"another root key", prefix + forged, 0},
			{"one bit changed", prefix + string(flip), 0},
			{"truncated", prefix + ar[:len(ar)-4], 0},
			{"not base64", prefix + "!!" + ar[2:], 0},
			{"empty", prefix, 0},
			{"another tenant's", prefix + gar, 0},
			{"expired", rt, authRequestTTL + time.Second},
		}
		b := e.browser()
		r.login(b)
		rows := e.authRequestRows()
		for _, tc := range bad {
			e.clock.Advance(tc.advance)
			if next := e.answer(e.tenant, ana, tc.returnTo); next != "" {
				t.Errorf("%s: AnswerLogin answered %s", tc.name, next)
			}
			resp, body := get(t, b, e.srv.URL+tc.returnTo)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired") {
				t.Errorf("%s: resume answered %d %s %s", tc.name, resp.StatusCode, resp.Header.Get("Location"), body)
			}
			e.clock.Advance(-tc.advance)
		}
		if n := e.authRequestRows(); n != rows {
			t.Fatalf("refused requests wrote %d rows", n-rows)
		}

		// The genuine one: one code, once.
		next := e.answer(e.tenant, ana, rt)
		loc, _ := url.Parse(next)
		if loc == nil || !strings.HasPrefix(next, a.RedirectURIs[0]+"?") || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
			t.Fatalf("AnswerLogin: %q", next)
		}
		if again := e.answer(e.tenant, ana, rt); again != "" {
			t.Fatalf("a second login answered the same request: %s", again)
		}
		resp, body := get(t, b, e.srv.URL+rt)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Fatalf("resume of an answered request: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		if n := e.authRequestRows(); n != rows+1 {
			t.Fatalf("%d rows for one answered request", n-rows)
		}
		// The code is bound to its client (RFC 6749 section 4.1.3).
		b2, bsec := e.app(gatehouse.App{Name: "Other"})
		if code, out := e.form("/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"redirect_uri": {a.RedirectURIs[0]}, "code_verifier": {verifier}}, b2.ClientID, bsec); code != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("another client's code: %d %v", code, out)
		}
		// ... and was spent by that attempt (RFC 6749 section 10.5).
		if _, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("a code tried by another client still redeems")
		}

		// The same through resume: one code, and a replayed resume URL
		// gets none.
		rt2 := e.sealedReturn(authURL)
		resp, _ = get(t, b, e.srv.URL+rt2)
		loc, _ = url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("resume: %d %v", resp.StatusCode, loc)
		}
		tok, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		idt, err := r.verifier.Verify(e.ctx, tok.Extra("id_token").(string))
		if err != nil || idt.Nonce != "n-1" || idt.Subject != ana.ID {
			t.Fatalf("ID token %v %v", idt, err)
		}
		if _, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("a code redeemed twice")
		}
		resp, _ = get(t, b, e.srv.URL+rt2)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("replayed resume: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// TestPromptNoneWithoutSession: prompt=none without a session answers the
// app with login_required (OpenID Connect Core section 3.1.2.6), shows no
// login and writes nothing.
func TestPromptNoneWithoutSession(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		verifier, _ := pkce()
		q := r.authorize(e.browser(), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none"))
		if q.Get("error") != "login_required" || q.Get("state") != "st-1" || q.Get("code") != "" {
			t.Fatalf("prompt=none without a session: %v", q)
		}
		if e.loginCount() != 0 || e.authRequestRows() != 0 {
			t.Fatalf("%d logins, %d rows", e.loginCount(), e.authRequestRows())
		}
	})
}

// TestOversizedRequestStored: a request too long to travel sealed in a
// return address is stored as before and still completes.
func TestOversizedRequestStored(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	a, sec := e.app(gatehouse.App{})
	r := e.rp(a, sec)
	verifier, _ := pkce()
	state := strings.Repeat("s", 2000)
	resp, _ := get(t, e.noFollow(), r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || !strings.HasPrefix(loc.Query().Get("return_to"), "/t/acme/authorize/resume?id=oar") || e.authRequestRows() != 1 {
		t.Fatalf("oversized request: %v, %d rows", loc, e.authRequestRows())
	}
	resp, _ = get(t, e.browser(), r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Query().Get("state") != state {
		t.Fatalf("oversized request not answered: %d %v", resp.StatusCode, loc)
	}
	if _, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
}

// TestSealedRequestAcrossReplicas: a request sealed by one replica is
// answered by another that shares the root key (each derives the same
// sealing key), and only once between them.
func TestSealedRequestAcrossReplicas(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{})
		r := e.rp(a, sec)
		verifier, _ := pkce()
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1")))
		kr, err := secret.NewKeyring("k1", []byte("0123456789abcdef0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		other, err := NewProvider(Config{Store: e.store, Keyring: kr, PublicURL: e.srv.URL, Clock: e.clock, Sessions: e.sessions})
		if err != nil {
			t.Fatal(err)
		}
		first := e.prov
		e.prov = other
		next := e.answer(e.tenant, ana, rt)
		e.prov = first
		loc, _ := url.Parse(next)
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("the other replica did not answer: %q", next)
		}
		if again := e.answer(e.tenant, ana, rt); again != "" {
			t.Fatalf("the first replica answered the same request again: %s", again)
		}
		if _, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatalf("a code issued on the other replica: %v", err)
		}
	})
}
