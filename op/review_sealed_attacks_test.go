package op

// Adversarial review of the sealed authorize request (sealed.go) and of
// the login that answers it in its own transaction (answer.go): each test
// is an attack through the real HTTP handlers (authorize, resume, token,
// the test login that runs AnswerLogin as package web does) on SQLite and
// PostgreSQL. A refused seal must end on a page of ours, never on a
// redirect URI (what the seal says cannot be trusted), and write nothing;
// an authorize request is answered with one code at most.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/secret"
	"golang.org/x/oauth2"
)

// sealWith seals plaintext as sealed.go does, but under the key derived
// for purpose and with aad: what another sealing use of the same root key
// (the flow cookie, the access token) would produce.
func sealWith(t testing.TB, kr *secret.Keyring, purpose string, plaintext, aad []byte) string {
	t.Helper()
	b, err := aes.NewCipher(kr.DeriveKey(purpose))
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(a.Seal(nonce, nonce, plaintext, aad))
}

// sealedPlaintext is the plaintext of the sealed request in return
// address rt, as the provider would seal it again.
func (e *env) sealedPlaintext(rt string) []byte {
	e.t.Helper()
	_, ar, _ := strings.Cut(rt, "?ar=")
	opened, err := e.prov.requests.open(e.tenant.ID, ar, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	pt, err := json.Marshal(sealedRequest{ID: opened.row.ID, ClientID: opened.row.ClientID, Expires: opened.row.ExpiresAt.UnixNano(), Params: opened.row.Request})
	if err != nil {
		e.t.Fatal(err)
	}
	return pt
}

// newSealedEnv is an environment where the test login signs ana in,
// with an app and its relying party.
func newSealedEnv(t *testing.T, engine string) (*env, *gatehouse.User, *gatehouse.App, string, *rp) {
	e := newEnv(t, engine)
	ana := e.user("ana@acme.test")
	e.signInAs(ana)
	a, sec := e.app(gatehouse.App{})
	return e, ana, a, sec, e.rp(a, sec)
}

// answerIn runs AnswerLogin in a transaction of its own, as a login would,
// without failing the test from another goroutine. It returns the
// redirect, or for a page answer (form_post) "page:" and the page as the
// login writes it once committed; "" when the login leaves the request to
// resume.
func (e *env) answerIn(t *gatehouse.Tenant, u *gatehouse.User, returnTo string) (string, error) {
	sess := &gatehouse.Session{ID: secret.DigestString(secret.NewToken("s_")), TenantID: t.ID, UserID: u.ID, ConnectionID: e.conn.ID, AuthTime: e.clock.Now().UTC()}
	var next string
	var page http.HandlerFunc
	err := e.store.Update(e.ctx, func(tx gatehouse.Tx) error {
		var err error
		next, page, err = e.prov.AnswerLogin(e.ctx, tx, t, u, sess, returnTo)
		return err
	})
	if err == nil && page != nil {
		rec := httptest.NewRecorder()
		page(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		next = "page:" + rec.Body.String()
	}
	return next, err
}

// refusedPage asserts that resume answered with a page of ours: no
// redirect anywhere, least of all to the app.
func refusedPage(t testing.TB, name string, resp *http.Response, body string, status int) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Location") != "" || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("%s: resume answered %d %q %.200s", name, resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// TestAttackSealSwap: values that are not this tenant's sealed authorize
// request, fed as ar=: other sealing uses of the same root key (the flow
// cookie's key, the access token's key, this purpose's key with another
// additional data), the browser's own session cookie and access token,
// encodings that decode to the same bytes or nearly (padding, standard
// base64, whitespace, an appended block) and oversized values. Each is
// refused by resume with a page and by AnswerLogin, and writes no row.
func TestAttackSealSwap(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, ana, _, _, r := newSealedEnv(t, engine)
		verifier, _ := pkce()
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1")))
		prefix, ar, _ := strings.Cut(rt, "?ar=")
		prefix += "?ar="
		pt := e.sealedPlaintext(rt)

		b := e.browser()
		tok, _ := r.login(b)
		u, _ := url.Parse(e.srv.URL)
		var sessCookie string
		for _, c := range b.Jar.Cookies(u) {
			sessCookie = c.Value
		}
		std := strings.NewReplacer("-", "+", "_", "/").Replace(ar)
		if std == ar {
			std = "+" + ar[1:]
		}
		long := make([]byte, 3100) // 4134 base64 characters
		_, _ = rand.Read(long)

		bad := []struct{ name, ar string }{
			{"flow cookie key", sealWith(t, e.keyring, "flow-cookie", pt, sealedAAD(e.tenant.ID))},
			{"access token key", sealWith(t, e.keyring, "op token encryption", pt, sealedAAD(e.tenant.ID))},
			{"console csrf key", sealWith(t, e.keyring, "console csrf", pt, sealedAAD(e.tenant.ID))},
			{"right key, no tenant in the additional data", sealWith(t, e.keyring, "op authorize request", pt, []byte(e.tenant.ID))},
			{"right key, another tenant's additional data", sealWith(t, e.keyring, "op authorize request", pt, sealedAAD("ten_other"))},
			{"the root key itself", func() string {
				a, _ := cipher.NewGCM(must(aes.NewCipher([]byte("0123456789abcdef0123456789abcdef"))))
				n := make([]byte, 12)
				return base64.RawURLEncoding.EncodeToString(a.Seal(n, n, pt, sealedAAD(e.tenant.ID)))
			}()},
			{"session cookie", sessCookie},
			{"access token", tok.AccessToken},
			{"padded", ar + "=="},
			{"standard base64", std},
			{"trailing space", ar + " "},
			{"a block appended", ar + "AAAAAAAAAAAAAAAAAAAAAA"},
			{"the nonce and tag only", ar[:38]},
			{"the seal twice", ar + ar},
			{"very long", strings.Repeat("A", 100000)},
			{"longer than any seal", base64.RawURLEncoding.EncodeToString(long)},
		}
		rows := e.authRequestRows()
		for _, tc := range bad {
			ret := prefix + url.QueryEscape(tc.ar)
			if next, err := e.answerIn(e.tenant, ana, ret); next != "" || err != nil {
				t.Errorf("%s: AnswerLogin answered %q %v", tc.name, next, err)
			}
			resp, body := get(t, b, e.srv.URL+ret)
			refusedPage(t, tc.name, resp, body, http.StatusBadRequest)
		}
		if n := e.authRequestRows(); n != rows {
			t.Fatalf("refused seals wrote %d rows", n-rows)
		}

		// This tenant's seal at another tenant, both ways in.
		globex := e.atkTenant("globex")
		bob := &gatehouse.User{TenantID: globex.ID, Email: "bob@globex.test", Username: "bob", Status: gatehouse.StatusActive, Source: gatehouse.SourceAdmin}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateUser(e.ctx, bob) })
		for _, ret := range []string{rt, "/t/globex/authorize/resume?ar=" + ar} {
			if next, err := e.answerIn(globex, bob, ret); next != "" || err != nil {
				t.Errorf("acme's seal answered by a globex login via %s: %q %v", ret, next, err)
			}
		}
		resp, body := get(t, b, e.srv.URL+"/t/globex/authorize/resume?ar="+ar)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("acme's seal at globex: %d %q %.200s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		// A user of another tenant, or inactive, never answers.
		if next, err := e.answerIn(e.tenant, bob, rt); next != "" || err != nil {
			t.Errorf("a globex user answered acme's request: %q %v", next, err)
		}
		e.atkSetStatus(ana.ID, gatehouse.StatusDeactivated)
		ana.Status = gatehouse.StatusDeactivated
		if next, err := e.answerIn(e.tenant, ana, rt); next != "" || err != nil {
			t.Errorf("a deactivated user answered: %q %v", next, err)
		}
		if n := e.authRequestRows(); n != rows {
			t.Fatalf("refused logins wrote %d rows", n-rows)
		}

		// The decoder skips line breaks (Go's base64, RFC 4648 section
		// 3.3 leaves it to the implementation): such a variant is the
		// same seal, so the same request, answered once in all.
		e.atkSetStatus(ana.ID, gatehouse.StatusActive)
		ana.Status = gatehouse.StatusActive
		answered := 0
		for _, v := range []string{"\n" + ar, ar[:10] + "\r\n" + ar[10:], ar} {
			if next, err := e.answerIn(e.tenant, ana, prefix+url.QueryEscape(v)); err != nil {
				t.Fatal(err)
			} else if next != "" {
				answered++
			}
		}
		if answered != 1 || e.authRequestRows() != rows+1 {
			t.Fatalf("line-broken variants of one seal: %d answers, %d rows", answered, e.authRequestRows()-rows)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestAttackSealExtraParameters: what travels next to the seal in the
// resume URL (a redirect URI, state, PKCE challenge, nonce, scope, client
// or response mode of the attacker's choosing, a stored request's id, a
// second ar) changes nothing: the code goes to the sealed redirect URI
// with the sealed state, is bound to the sealed PKCE challenge (RFC 7636
// section 4.6) and nonce, and AnswerLogin leaves such a return address to
// resume.
func TestAttackSealExtraParameters(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{RedirectURIs: []string{"https://wiki.example/cb", "https://wiki.example/other"}})
		evil, _ := e.app(gatehouse.App{Name: "Evil", RedirectURIs: []string{"https://evil.example/cb"}, Public: true})
		r := e.rp(a, sec)
		b := e.browser()
		r.login(b)

		// A stored request (too long to be sealed) of the attacker's app.
		_, evilChallenge := pkce()
		eq := url.Values{"client_id": {evil.ClientID}, "redirect_uri": {evil.RedirectURIs[0]}, "response_type": {"code"}, "scope": {"openid"},
			"state": {strings.Repeat("e", 2000)}, "code_challenge": {evilChallenge}, "code_challenge_method": {"S256"}}
		resp, _ := get(t, e.noFollow(), e.issuer()+"/authorize?"+eq.Encode())
		loc, _ := url.Parse(resp.Header.Get("Location"))
		evilRT := loc.Query().Get("return_to")
		_, evilID, ok := strings.Cut(evilRT, "?id=")
		if !ok {
			t.Fatalf("no stored request: %q", evilRT)
		}

		extras := []struct{ name, query string }{
			{"redirect_uri, state, challenge, nonce, scope, client", url.Values{"redirect_uri": {"https://evil.example/cb"}, "state": {"evil"},
				"code_challenge": {evilChallenge}, "code_challenge_method": {"S256"}, "nonce": {"evil"}, "scope": {"openid admin"},
				"client_id": {evil.ClientID}, "response_mode": {"fragment"}}.Encode()},
			{"the app's other redirect URI", "redirect_uri=" + url.QueryEscape(a.RedirectURIs[1])},
			{"a stored request's id", "id=" + evilID},
			{"a second ar", "ar=garbage"},
		}
		for _, tc := range extras {
			verifier, _ := pkce()
			rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1")))
			ret := rt + "&" + tc.query
			if next, err := e.answerIn(e.tenant, ana, ret); next != "" || err != nil {
				t.Errorf("%s: AnswerLogin answered %q %v", tc.name, next, err)
			}
			resp, body := get(t, b, e.srv.URL+ret)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), a.RedirectURIs[0]+"?") ||
				loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" || loc.Fragment != "" {
				t.Errorf("%s: resume answered %d %v %.200s", tc.name, resp.StatusCode, loc, body)
				continue
			}
			code := loc.Query().Get("code")
			// The attacker's verifier for their challenge does not redeem
			// it; the sealed one does, with the sealed nonce.
			if c, out := e.form("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://evil.example/cb"},
				"client_id": {evil.ClientID}, "code_verifier": {verifier}}, "", ""); c == http.StatusOK {
				t.Errorf("%s: the attacker's client redeemed the code: %v", tc.name, out)
			}
		}
		// The stored request itself was not answered by any of this.
		var done bool
		if err := e.store.DB().QueryRowContext(e.ctx, `SELECT code_hash IS NOT NULL FROM op_auth_requests WHERE id = $1`, evilID).Scan(&done); err != nil || done {
			t.Fatalf("the attacker's stored request: answered %v, %v", done, err)
		}

		// Untouched, the sealed values hold end to end.
		verifier, _ := pkce()
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1")))
		resp, _ = get(t, b, e.srv.URL+rt+"&nonce=evil&scope=openid")
		loc, _ = url.Parse(resp.Header.Get("Location"))
		tok, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		idt, err := r.verifier.Verify(e.ctx, tok.Extra("id_token").(string))
		if err != nil || idt.Nonce != "n-1" {
			t.Fatalf("ID token %v %v", idt, err)
		}
	})
}

// TestAttackSealOutlivesApp: a seal lives authRequestTTL; the app behind
// it may change meanwhile. Deleting the app, removing the sealed redirect
// URI, limiting the app to groups the user is not in or to another
// connection: resume and AnswerLogin decide on the app as it is now, and
// no code goes to a redirect URI the app no longer has (RFC 6749 section
// 3.1.2: the redirect URI must be a registered one when the code is sent).
func TestAttackSealOutlivesApp(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		other := &gatehouse.Connection{TenantID: e.tenant.ID, Type: gatehouse.ConnMock, Name: "Other", Enabled: true, Config: json.RawMessage(`{}`), JIT: gatehouse.DefaultJITPolicy()}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateConnection(e.ctx, other) })

		cases := []struct {
			name   string
			change func(a *gatehouse.App)
			delete bool
			// resume's answer: a status, and for a redirect where to.
			status int
			login  bool
		}{
			{"redirect URI removed", func(a *gatehouse.App) { a.RedirectURIs = []string{"https://wiki.example/new"} }, false, http.StatusBadRequest, false},
			{"app deleted", nil, true, http.StatusBadRequest, false},
			{"limited to a group", func(a *gatehouse.App) { a.AllowedGroups = []string{"Admins"} }, false, http.StatusForbidden, false},
			{"limited to another connection", func(a *gatehouse.App) { a.AllowedConnections = []string{other.ID} }, false, http.StatusFound, true},
		}
		for _, tc := range cases {
			for _, state := range []string{"st-1", strings.Repeat("s", 2000)} {
				a, sec := e.app(gatehouse.App{Name: fmt.Sprintf("%s %d", tc.name, len(state))})
				r := e.rp(a, sec)
				b := e.browser()
				r.login(b)
				verifier, _ := pkce()
				// A long state: the request is stored, not sealed; the same rules.
				rt := e.loginReturn(r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
				if stored := strings.Contains(rt, "?id="); stored != (len(state) > 100) {
					t.Fatalf("%s: return address %q", tc.name, rt)
				}
				e.update(func(tx gatehouse.Tx) error {
					if tc.delete {
						return tx.DeleteApp(e.ctx, e.tenant.ID, a.ID)
					}
					tc.change(a)
					return tx.UpdateApp(e.ctx, a)
				})
				rows := e.authRequestRows()
				if next, err := e.answerIn(e.tenant, ana, rt); next != "" || err != nil {
					t.Errorf("%s: AnswerLogin answered %q %v", tc.name, next, err)
				}
				resp, _ := get(t, e.noFollowWith(b), e.srv.URL+rt)
				loc := resp.Header.Get("Location")
				if resp.StatusCode != tc.status || (tc.login != strings.Contains(loc, "/login?")) || strings.HasPrefix(loc, "https://wiki.example/") {
					t.Errorf("%s: resume answered %d %q", tc.name, resp.StatusCode, loc)
				}
				if n := e.authRequestRows(); n != rows {
					t.Errorf("%s: %d rows written", tc.name, n-rows)
				}
			}
		}
	})
}

// loginReturn runs an authorize request without a session and returns the
// login's return address: the sealed request, or a stored one's id.
func (e *env) loginReturn(authURL string) string {
	e.t.Helper()
	resp, body := get(e.t, e.noFollow(), authURL)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasSuffix(loc.Path, "/login") {
		e.t.Fatalf("authorize: %d %v %s", resp.StatusCode, loc, body)
	}
	return loc.Query().Get("return_to")
}

// noFollowWith is browser b stopping at the first redirect.
func (e *env) noFollowWith(b *http.Client) *http.Client {
	c := *b
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// TestAttackSealAnswerRollsBack: the code AnswerLogin writes belongs to
// the login's transaction. A login that fails after it (a conflict, a
// refusal later in the transaction) leaves no code and no audit, and the
// request is not spent: the next login answers it, once.
func TestAttackSealAnswerRollsBack(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, ana, a, sec, r := newSealedEnv(t, engine)
		verifier, _ := pkce()
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
		audits := func() int {
			var n int
			if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM audit_events WHERE action = 'app.signed_in'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := audits()
		refusal := errors.New("refused later in the login's transaction")
		var leaked string
		sess := &gatehouse.Session{ID: secret.DigestString(secret.NewToken("s_")), TenantID: e.tenant.ID, UserID: ana.ID, ConnectionID: e.conn.ID, AuthTime: e.clock.Now().UTC()}
		err := e.store.Update(e.ctx, func(tx gatehouse.Tx) error {
			next, _, err := e.prov.AnswerLogin(e.ctx, tx, e.tenant, ana, sess, rt)
			if err != nil {
				return err
			}
			leaked = next
			return refusal
		})
		if !errors.Is(err, refusal) || leaked == "" {
			t.Fatalf("login: %v, answered %q", err, leaked)
		}
		if n := e.authRequestRows(); n != 0 || audits() != before {
			t.Fatalf("a rolled back login left %d rows, %d audits", n, audits()-before)
		}
		// The rolled back code redeems nothing.
		lq, _ := url.Parse(leaked)
		if c, out := e.form("/token", atkCodeForm(r, lq.Query().Get("code"), verifier), a.ClientID, sec); c != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("rolled back code: %d %v", c, out)
		}
		// The request is still answerable, once.
		next := e.answer(e.tenant, ana, rt)
		nq, _ := url.Parse(next)
		if nq == nil || nq.Query().Get("code") == "" || nq.Query().Get("code") == lq.Query().Get("code") {
			t.Fatalf("after the rollback: %q", next)
		}
		if _, err := r.cfg.Exchange(e.ctx, nq.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
		if e.authRequestRows() != 1 || audits() != before+1 {
			t.Fatalf("%d rows, %d audits", e.authRequestRows(), audits()-before)
		}
	})
}

// TestAttackSealConcurrentAnswers: logins and resume requests racing on
// one sealed request (a replayed callback, two tabs, an attacker holding
// the URL) produce one code (INSERT ... ON CONFLICT DO NOTHING), and the
// losers fail closed: AnswerLogin leaves them to resume, resume shows a
// page.
func TestAttackSealConcurrentAnswers(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, ana, _, _, r := newSealedEnv(t, engine)
		verifier, _ := pkce()
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
		bs := make([]*http.Client, 4)
		for i := range bs {
			bs[i] = e.browser()
			r.login(bs[i])
		}
		rows := e.authRequestRows()
		var mu sync.Mutex
		var codes []string
		var errs []error
		var wg sync.WaitGroup
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if i%3 == 0 {
					resp, err := e.noFollowWith(bs[i/3]).Get(e.srv.URL + rt)
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					resp.Body.Close()
					if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode == http.StatusFound && loc.Query().Get("code") != "" {
						mu.Lock()
						codes = append(codes, loc.Query().Get("code"))
						mu.Unlock()
					} else if resp.StatusCode != http.StatusBadRequest {
						mu.Lock()
						errs = append(errs, errors.New("resume: "+resp.Status))
						mu.Unlock()
					}
					return
				}
				next, err := e.answerIn(e.tenant, ana, rt)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if next != "" {
					codes = append(codes, must(url.Parse(next)).Query().Get("code"))
				}
			}(i)
		}
		wg.Wait()
		if len(errs) > 0 {
			// A serialization failure would fail the login: not the
			// answer of a request answered before.
			t.Fatalf("racing answers failed: %v", errs)
		}
		if len(codes) != 1 || e.authRequestRows() != rows+1 {
			t.Fatalf("%d codes, %d rows for one request", len(codes), e.authRequestRows()-rows)
		}
		if _, err := r.cfg.Exchange(e.ctx, codes[0], oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAttackSealCodeReuseRevokes: a code issued by the login's transaction
// is single use like any other, and its second use revokes the tokens the
// first issued (RFC 6749 sections 4.1.2 and 10.5).
func TestAttackSealCodeReuseRevokes(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, _, a, sec, r := newSealedEnv(t, engine)
		before := e.answered.Load()
		code, v := atkCode(r, e.browser())
		if e.answered.Load() != before+1 {
			t.Fatal("the code did not come from the login's transaction")
		}
		first := e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec)
		atkOK(t, "first use", first)
		atkRefused(t, "second use", e.atkToken(atkCodeForm(r, code, v), a.ClientID, sec), 400, "invalid_grant")
		e.atkDead("after the code's reuse", first.body["access_token"].(string), first.body["refresh_token"].(string), a, sec)
	})
}

// TestAttackSealFreshness: a sealed request that asks for a fresh login
// (prompt=login, max_age=0; OpenID Connect Core section 3.1.2.1) carries
// the moment it sent the browser to log in. A browser that skips the
// login and goes to the resume URL with its older session is sent to log
// in again, not answered; form_post and an id_token_hint naming someone
// else are left to resume by AnswerLogin and answered there as before.
func TestAttackSealFreshness(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, ana, a, _, r := newSealedEnv(t, engine)
		b := e.browser()
		r.login(b)
		e.clock.Advance(replicaSkew + 10*time.Second)
		for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
			verifier, _ := pkce()
			resp, _ := get(t, e.noFollowWith(b), r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), opt))
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasSuffix(loc.Path, "/login") {
				t.Fatalf("fresh login asked: %d %v", resp.StatusCode, loc)
			}
			rt := loc.Query().Get("return_to")
			resp, _ = get(t, e.noFollowWith(b), e.srv.URL+rt)
			loc, _ = url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasSuffix(loc.Path, "/login") || loc.Query().Get("prompt") != "login" {
				t.Errorf("resume with the older session, skipping the login: %d %v", resp.StatusCode, loc)
			}
			// The login that follows answers it.
			if next := e.answer(e.tenant, ana, rt); !strings.HasPrefix(next, a.RedirectURIs[0]+"?code=") {
				t.Errorf("the fresh login: %q", next)
			}
		}

		// form_post: the login answers with the page that posts the code
		// to the app; resume, coming after, finds the request answered.
		verifier, _ := pkce()
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "form_post")))
		if next := e.answer(e.tenant, ana, rt); !strings.HasPrefix(next, "page:") || !strings.Contains(next, `action="`+a.RedirectURIs[0]+`"`) ||
			!strings.Contains(next, `name="code" value="`) {
			t.Errorf("form_post answered by the login: %q", next)
		}
		resp, body := get(t, b, e.srv.URL+rt)
		refusedPage(t, "form_post at resume after the login", resp, body, http.StatusBadRequest)

		// id_token_hint naming bob: ana's login does not answer it, nor
		// does her session at resume; bob's login does.
		bob := e.user("bob@acme.test")
		e.signInAs(bob)
		bobTok, _ := r.login(e.browser())
		e.signInAs(ana)
		rt = e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("id_token_hint", bobTok.Extra("id_token").(string))))
		if next := e.answer(e.tenant, ana, rt); next != "" {
			t.Errorf("ana's login answered a request for bob: %q", next)
		}
		resp, _ = get(t, e.noFollowWith(b), e.srv.URL+rt)
		if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || loc == nil || !strings.HasSuffix(loc.Path, "/login") {
			t.Errorf("ana's session at resume of a request for bob: %d %v", resp.StatusCode, loc)
		}
		if next := e.answer(e.tenant, bob, rt); !strings.HasPrefix(next, a.RedirectURIs[0]+"?code=") {
			t.Errorf("bob's login: %q", next)
		}
	})
}

// TestAttackSealGrowsAtResume: resume seals a request again with the
// moment it sends the browser to log in (prompt=login, max_age), which
// makes the seal longer. A request whose first seal just fitted in a
// return address (a long state) and whose second does not must still be
// found when the login returns: stored, like any request too long to be
// sealed, not a return address to a row that was never written.
func TestAttackSealGrowsAtResume(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, _, a, _, r := newSealedEnv(t, engine)
		b := e.browser()
		r.login(b)
		// form_post with max_age and a session: authorize leaves the
		// request to resume, sealed without a login moment.
		verifier, _ := pkce()
		var rt string
		for n := 600; n < 1400 && rt == ""; n += 3 {
			resp, _ := get(t, e.noFollowWith(b), r.cfg.AuthCodeURL(strings.Repeat("s", n), oauth2.S256ChallengeOption(verifier),
				oauth2.SetAuthURLParam("response_mode", "form_post"), oauth2.SetAuthURLParam("max_age", "3600")))
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if loc == nil {
				t.Fatalf("authorize: %d", resp.StatusCode)
			}
			if _, ar, ok := strings.Cut(loc.RawQuery, "ar="); ok && len(ar) > maxSealedQuery-20 {
				rt = loc.Path + "?" + loc.RawQuery
			}
		}
		if rt == "" {
			t.Fatal("no seal near the limit")
		}
		// The session ends before the browser comes to resume.
		fresh := e.browser()
		resp, _ := get(t, e.noFollowWith(fresh), e.srv.URL+rt)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasSuffix(loc.Path, "/login") {
			t.Fatalf("resume without a session: %d %v", resp.StatusCode, loc)
		}
		// The login returns there and the app gets its code.
		resp, body := get(t, fresh, e.srv.URL+loc.Path+"?"+loc.RawQuery)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="`+a.RedirectURIs[0]+`"`) {
			t.Fatalf("after the login: %d %.300s", resp.StatusCode, body)
		}
	})
}

// TestAttackSealAsOtherSecrets: the reverse of TestAttackSealSwap. A
// sealed authorize request does not open as a flow cookie (the login's
// browser binding) under the flow's own cookie name, nor is it a session
// cookie; a real flow cookie is not a sealed request. Each use of the root
// key has its own derived key (secret.DeriveKey, HKDF with the purpose as
// info, RFC 5869 section 3.2).
func TestAttackSealAsOtherSecrets(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, ana, _, _, r := newSealedEnv(t, engine)
		verifier, _ := pkce()
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
		_, ar, _ := strings.Cut(rt, "?ar=")

		flow := &connector.Flow{ID: "flw_1", State: "state-1", TenantID: e.tenant.ID, ConnectionID: e.conn.ID, ReturnTo: rt}
		w := httptest.NewRecorder()
		if err := e.sessions.SetFlow(w, flow, false); err != nil {
			t.Fatal(err)
		}
		cookies := w.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("flow cookies %v", cookies)
		}
		req := httptest.NewRequest(http.MethodGet, e.srv.URL+"/sso/mock/"+e.conn.ID+"/callback?state=state-1", nil)
		req.AddCookie(cookies[0])
		if f, err := e.sessions.FindFlow(req, e.conn, "state-1"); err != nil || f.ReturnTo != rt {
			t.Fatalf("the genuine flow cookie: %v %v", f, err)
		}
		// The seal under the flow cookie's name.
		req = httptest.NewRequest(http.MethodGet, e.srv.URL+"/sso/mock/"+e.conn.ID+"/callback?state=state-1", nil)
		req.AddCookie(&http.Cookie{Name: cookies[0].Name, Value: ar})
		if f, err := e.sessions.FindFlow(req, e.conn, "state-1"); err == nil {
			t.Fatalf("a sealed request opened as a flow: %+v", f)
		}
		// The seal as the session cookie.
		b := e.browser()
		r.login(b)
		u, _ := url.Parse(e.srv.URL)
		for _, c := range b.Jar.Cookies(u) {
			b.Jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: ar, Path: "/"}})
		}
		req = httptest.NewRequest(http.MethodGet, e.issuer()+"/", nil)
		for _, c := range b.Jar.Cookies(u) {
			req.AddCookie(c)
		}
		if s, _, err := e.sessions.Current(e.ctx, req, e.tenant.ID); err == nil {
			t.Fatalf("a sealed request is a session: %+v", s)
		}
		// The flow cookie as ar=, through resume and AnswerLogin.
		ret := "/t/acme/authorize/resume?ar=" + url.QueryEscape(cookies[0].Value)
		if next := e.answer(e.tenant, ana, ret); next != "" {
			t.Fatalf("a flow cookie answered as a request: %q", next)
		}
		resp, body := get(t, e.browser(), e.srv.URL+ret)
		refusedPage(t, "flow cookie as ar", resp, body, http.StatusBadRequest)
	})
}

// TestAttackSealErrorAnswers: the redirect URI check comes before any
// answer to the app. A prompt=none request without a session, left to
// resume, answers login_required on the registered redirect URI (OpenID
// Connect Core section 3.1.2.6); once the app no longer has that URI the
// same resume URL ends on a page, not an error answer to it (RFC 6749
// section 4.1.2.1: never to an unregistered URI). response_mode=fragment
// answered by the login puts the code in the fragment.
func TestAttackSealErrorAnswers(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e, ana, a, _, r := newSealedEnv(t, engine)
		verifier, _ := pkce()
		resp, body := get(t, e.noFollow(), r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasSuffix(loc.Path, "/"+pathResume) || !loc.Query().Has("ar") {
			t.Fatalf("prompt=none without a session: %d %v %s", resp.StatusCode, loc, body)
		}
		resumeURL := loc.String()
		resp, _ = get(t, e.noFollow(), resumeURL)
		if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || !strings.HasPrefix(loc.String(), a.RedirectURIs[0]+"?") || loc.Query().Get("error") != "login_required" {
			t.Fatalf("prompt=none at resume: %d %v", resp.StatusCode, loc)
		}
		a.RedirectURIs = []string{"https://wiki.example/new"}
		e.update(func(tx gatehouse.Tx) error { return tx.UpdateApp(e.ctx, a) })
		resp, body = get(t, e.noFollow(), resumeURL)
		refusedPage(t, "prompt=none after the redirect URI's removal", resp, body, http.StatusBadRequest)

		r = e.rp(a, "")
		rt := e.sealedReturn(r.cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "fragment")))
		next, _ := url.Parse(e.answer(e.tenant, ana, rt))
		frag, _ := url.ParseQuery(next.Fragment)
		if next.RawQuery != "" || frag.Get("code") == "" || frag.Get("state") != "st-1" || next.Scheme+"://"+next.Host+next.Path != a.RedirectURIs[0] {
			t.Fatalf("response_mode=fragment answered by the login: %v", next)
		}
	})
}
