package op

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/session"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
	"golang.org/x/oauth2"
)

// testClock is the wall clock plus an offset tests can move forward.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// env is one provider on a real store behind a real HTTP server, with a
// stand-in for the web package's login: GET /t/{tenant}/login starts a
// real browser session (session.Manager) for env.loginAs and returns to
// return_to, as the login does after a successful upstream sign-in.
type env struct {
	t        testing.TB
	ctx      context.Context
	store    *sqlstore.Store
	keyring  *secret.Keyring
	sessions *session.Manager
	prov     *Provider
	srv      *httptest.Server
	clock    *testClock
	tenant   *gatehouse.Tenant
	conn     *gatehouse.Connection

	mu         sync.Mutex
	loginAs    *gatehouse.User
	loginConn  string
	logins     []url.Values // query of every login page visit
	backchannl []string     // logout tokens received
	// viaResume: the fake login only starts the session and returns, as
	// before AnswerLogin; answered counts logins that answered the app.
	viaResume atomic.Bool
	answered  atomic.Int64
}

// TestMain keeps zitadel's and the store's logs (slog.Default) to errors.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

func engines(t *testing.T, fn func(t *testing.T, engine string)) {
	for _, e := range testdb.Engines {
		t.Run(e, func(t *testing.T) { fn(t, e) })
	}
}

func newEnv(t testing.TB, engine string) *env {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{}
	st, err := sqlstore.Open(ctx, testdb.URL(t, engine), sqlstore.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := secret.NewKeyring("k1", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, store: st, keyring: kr, clock: clock}
	var handler http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.sessions, err = session.New(session.Config{Store: st, Keyring: kr, PublicURL: e.srv.URL, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	e.prov, err = NewProvider(Config{Store: st, Keyring: kr, PublicURL: e.srv.URL, Clock: clock, Sessions: e.sessions, Dev: false})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range Patterns {
		mux.Handle(p, e.prov)
	}
	mux.HandleFunc("GET /t/{tenant}/login", e.fakeLogin)
	mux.HandleFunc("POST /app/backchannel", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.backchannl = append(e.backchannl, r.PostFormValue("logout_token"))
		e.mu.Unlock()
	})
	handler = mux

	e.tenant = &gatehouse.Tenant{Slug: "acme", Name: "Acme", SupportContact: "it@acme.test", Domains: []string{"acme.test"}}
	e.conn = &gatehouse.Connection{Type: gatehouse.ConnMock, Name: "Mock", Enabled: true, Config: json.RawMessage(`{}`), JIT: gatehouse.DefaultJITPolicy()}
	e.update(func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(ctx, e.tenant); err != nil {
			return err
		}
		e.conn.TenantID = e.tenant.ID
		return tx.CreateConnection(ctx, e.conn)
	})
	return e
}

func (e *env) update(fn func(tx gatehouse.Tx) error) {
	e.t.Helper()
	if err := e.store.Update(e.ctx, fn); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) issuer() string { return e.srv.URL + "/t/" + e.tenant.Slug }

// user creates an active user in groups (created when missing).
func (e *env) user(email string, groups ...string) *gatehouse.User {
	e.t.Helper()
	u := &gatehouse.User{TenantID: e.tenant.ID, Email: email, Username: strings.Split(email, "@")[0],
		DisplayName: "Ana Lima", GivenName: "Ana", FamilyName: "Lima", Status: gatehouse.StatusActive, Source: gatehouse.SourceAdmin}
	e.update(func(tx gatehouse.Tx) error {
		if err := tx.CreateUser(e.ctx, u); err != nil {
			return err
		}
		for _, name := range groups {
			g, err := tx.GetGroupByName(e.ctx, e.tenant.ID, name)
			if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				g = &gatehouse.Group{TenantID: e.tenant.ID, Name: name, Source: gatehouse.SourceAdmin}
				err = tx.CreateGroup(e.ctx, g)
			}
			if err != nil {
				return err
			}
			if err := tx.AddMembership(e.ctx, &gatehouse.Membership{TenantID: e.tenant.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: gatehouse.ManagedByAdmin}); err != nil {
				return err
			}
		}
		return nil
	})
	u.Groups = groups
	return u
}

// app registers an app; confidential apps get a secret, returned.
func (e *env) app(a gatehouse.App) (*gatehouse.App, string) {
	e.t.Helper()
	if a.TenantID == "" {
		a.TenantID = e.tenant.ID
	}
	if a.Name == "" {
		a.Name = "Wiki"
	}
	if a.RedirectURIs == nil {
		a.RedirectURIs = []string{"https://wiki.example/cb"}
	}
	var sec string
	if !a.Public {
		sec = secret.NewToken("")
		a.SecretHash = secret.Digest(sec)
	}
	e.update(func(tx gatehouse.Tx) error { return tx.CreateApp(e.ctx, &a) })
	return &a, sec
}

func (e *env) fakeLogin(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.logins = append(e.logins, r.URL.Query())
	u, connID := e.loginAs, e.loginConn
	e.mu.Unlock()
	if u == nil {
		http.Error(w, "no test user to sign in", http.StatusForbidden)
		return
	}
	// The real login refuses inactive users (provision); so does this one.
	var fresh *gatehouse.User
	if err := e.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		fresh, err = tx.GetUser(r.Context(), u.TenantID, u.ID)
		return err
	}); err != nil || !fresh.Active() {
		http.Error(w, "account not active", http.StatusForbidden)
		return
	}
	if connID == "" {
		connID = e.conn.ID
	}
	if c := r.URL.Query().Get("connection"); c != "" {
		connID = c
	}
	rt := r.URL.Query().Get("return_to")
	if e.viaResume.Load() {
		_ = e.sessions.Discard(r.Context(), r)
		if _, err := e.sessions.Start(r.Context(), w, e.tenant, u, connID, ""); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
	} else {
		// As the web package's login: the session, and the code of the
		// authorize request it returns to (AnswerLogin), in one
		// transaction.
		var p *session.Pending
		var next string
		var page http.HandlerFunc
		err := e.store.Update(r.Context(), func(tx gatehouse.Tx) error {
			var err error
			if p, err = e.sessions.PrepareReplace(r, e.tenant, fresh, connID, ""); err != nil {
				return err
			}
			if err := p.Write(r.Context(), tx); err != nil {
				return err
			}
			next, page, err = e.prov.AnswerLogin(r.Context(), tx, e.tenant, fresh, p.Session, rt)
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		p.SetCookie(w)
		if page != nil {
			e.answered.Add(1)
			page(w, r)
			return
		}
		if next != "" {
			e.answered.Add(1)
			http.Redirect(w, r, next, http.StatusFound)
			return
		}
	}
	if rt == "" {
		rt = "/t/" + e.tenant.Slug + "/"
	}
	http.Redirect(w, r, rt, http.StatusFound)
}

// loginInPlace makes the authorize endpoint serve the (fake) login in
// place (Config.Login), as the server wires the web package's login.
func (e *env) loginInPlace(on bool) {
	e.prov.cfg.Login = nil
	if on {
		e.prov.cfg.Login = func(w http.ResponseWriter, r *http.Request, loginURL string) {
			u, err := url.Parse(loginURL)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL = u
			e.fakeLogin(w, r2)
		}
	}
}

func (e *env) loginCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.logins)
}

func (e *env) signInAs(u *gatehouse.User) {
	e.mu.Lock()
	e.loginAs = u
	e.mu.Unlock()
}

// browser is a cookie-keeping client that follows redirects on the
// Gatehouse server and stops at any other host (the app's redirect URI).
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != host || len(via) > 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// rp is an independent relying party: golang.org/x/oauth2 and go-oidc.
type rp struct {
	e        *env
	cfg      oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
}

func (e *env) rp(a *gatehouse.App, sec string, scopes ...string) *rp {
	e.t.Helper()
	p, err := oidc.NewProvider(e.ctx, e.issuer())
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups", oidc.ScopeOfflineAccess}
	}
	ep := p.Endpoint()
	if a.Public {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &rp{e: e, provider: p,
		cfg:      oauth2.Config{ClientID: a.ClientID, ClientSecret: sec, Endpoint: ep, RedirectURL: a.RedirectURIs[0], Scopes: scopes},
		verifier: p.Verifier(&oidc.Config{ClientID: a.ClientID, SupportedSigningAlgs: []string{"RS256", "ES256", "EdDSA"}}),
	}
}

func pkce() (verifier, challenge string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	verifier = base64.RawURLEncoding.EncodeToString(b[:])
	d := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(d[:])
}

// get runs one browser request and returns the final response's Location
// (the app's redirect URI with code or error) and status.
func get(t testing.TB, b *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// authorize drives the browser from the authorize URL to the app's
// redirect URI and returns its query (code, state or error).
func (r *rp) authorize(b *http.Client, opts ...oauth2.AuthCodeOption) url.Values {
	r.e.t.Helper()
	resp, body := get(r.e.t, b, r.cfg.AuthCodeURL("st-1", opts...))
	if resp.StatusCode != http.StatusFound {
		r.e.t.Fatalf("authorize ended with %d: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		r.e.t.Fatal(err)
	}
	if got, want := loc.Scheme+"://"+loc.Host+loc.Path, r.cfg.RedirectURL; got != want {
		r.e.t.Fatalf("redirected to %s, want the app's %s", got, want)
	}
	return loc.Query()
}

// login runs a full code flow with PKCE and returns the token and the
// verified ID token.
func (r *rp) login(b *http.Client, extra ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken) {
	r.e.t.Helper()
	verifier, _ := pkce()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1")}, extra...)
	q := r.authorize(b, opts...)
	if q.Get("error") != "" || q.Get("state") != "st-1" {
		r.e.t.Fatalf("authorize answered %v", q)
	}
	tok, err := r.cfg.Exchange(r.e.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		r.e.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(r.e.ctx, raw)
	if err != nil {
		r.e.t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != "n-1" {
		r.e.t.Fatalf("nonce %q", idt.Nonce)
	}
	return tok, idt
}

// form posts a form to path under the issuer with optional basic auth.
func (e *env) form(path string, v url.Values, user, pass string) (int, map[string]any) {
	e.t.Helper()
	return e.post(e.issuer(), path, v, user, pass)
}

// post posts a form to path under issuer with optional basic auth.
func (e *env) post(issuer, path string, v url.Values, user, pass string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &out)
	if out == nil {
		out = map[string]any{"_body": string(body)}
	}
	return resp.StatusCode, out
}

// userinfo calls the userinfo endpoint of issuer with a bearer token.
func userinfo(t testing.TB, issuer, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}
