package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oidc"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/op"
	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/session"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
	"github.com/gatehouse-sso/gatehouse/web"
)

// opStack is Gatehouse's sign-in path assembled in process the way the
// server wires it: the store, one session manager shared by the web
// handler (login, connector callbacks, JIT) and the OIDC provider.
type opStack struct {
	srv      *httptest.Server
	store    *sqlstore.Store
	keyring  *secret.Keyring
	tenant   *gatehouse.Tenant
	upstream *realOP
}

func newOPStack(t *testing.T) *opStack {
	t.Helper()
	ctx := context.Background()
	oidc.Register()
	s := &opStack{}
	var handler http.Handler
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(s.srv.Close)
	s.upstream = startOP(t, opOptions{RedirectPrefix: s.srv.URL + "/sso/oidc/", Accounts: opAccounts})

	var err error
	s.store, err = sqlstore.Open(ctx, testdb.SQLiteURL(t), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	s.keyring, _ = secret.NewKeyring("k1", []byte("0123456789abcdef0123456789abcdef"))
	sessions, err := session.New(session.Config{Store: s.store, Keyring: s.keyring, PublicURL: s.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	httpClient := outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 10 * time.Second})
	w, err := web.New(web.Config{Store: s.store, Keyring: s.keyring, Resolver: provision.New(s.store, provision.Options{}),
		PublicURL: s.srv.URL, Sessions: sessions, ConnectorEnv: connector.Env{HTTPClient: httpClient}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := op.New(op.Config{Store: s.store, Keyring: s.keyring, PublicURL: s.srv.URL, Sessions: sessions, HTTPClient: httpClient})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", w)
	for _, pat := range op.Patterns {
		mux.Handle(pat, p)
	}
	handler = mux

	// Tenant "acme" owning example.com, one OIDC connection to the real
	// upstream provider, configured by its connector (live discovery).
	s.tenant = &gatehouse.Tenant{Slug: "acme", Name: "Acme", Domains: []string{"example.com"}}
	typ, _ := connector.Lookup("oidc", false)
	conn := &gatehouse.Connection{ID: gatehouse.NewID("con"), Type: "oidc", Name: "Upstream", Enabled: true, JIT: gatehouse.DefaultJITPolicy()}
	raw := map[string]json.RawMessage{}
	for k, v := range map[string]any{"issuer": s.upstream.Issuer, "client_id": s.upstream.ClientID,
		"client_secret": s.upstream.ClientSecret, "scopes": []string{"openid", "email", "profile", "groups"}} {
		raw[k], _ = json.Marshal(v)
	}
	cfg, sec, err := typ.Configure(ctx, connector.Env{PublicURL: s.srv.URL, HTTPClient: httpClient, Clock: gatehouse.SystemClock{}}, conn, nil, raw)
	if err != nil {
		t.Fatalf("configure the upstream connection: %v", err)
	}
	conn.Config = cfg
	if conn.Secrets, err = s.keyring.Seal(sec, []byte(conn.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.store.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(ctx, s.tenant); err != nil {
			return err
		}
		conn.TenantID = s.tenant.ID
		return tx.CreateConnection(ctx, conn)
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// app registers a confidential app the way the admin API stores one.
func (s *opStack) app(t *testing.T, name, redirect string) (*gatehouse.App, string) {
	t.Helper()
	sec := secret.NewToken("")
	a := &gatehouse.App{TenantID: s.tenant.ID, Name: name, RedirectURIs: []string{redirect}, SecretHash: secret.Digest(sec),
		PostLogoutRedirectURIs: []string{redirect + "/bye"}}
	if err := s.store.Update(context.Background(), func(tx gatehouse.Tx) error { return tx.CreateApp(context.Background(), a) }); err != nil {
		t.Fatal(err)
	}
	return a, sec
}

// countingTransport counts the browser's requests to one host.
type countingTransport struct {
	host string
	n    atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == c.host {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// browser keeps cookies, follows redirects between Gatehouse and the
// upstream, stops at the apps (hosts *.example), and counts its requests
// to the upstream provider.
func (s *opStack) browser() (*http.Client, *countingTransport) {
	upHost, _ := url.Parse(s.upstream.Issuer)
	ct := &countingTransport{host: upHost.Host}
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: ct, Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if strings.HasSuffix(r.URL.Host, ".example") || len(via) > 20 {
			return http.ErrUseLastResponse
		}
		return nil
	}}, ct
}

// TestOPTwoAppsOneUpstreamLogin: a relying party Gatehouse did not write
// (golang.org/x/oauth2 with coreos/go-oidc) signs in to two apps. The
// first sends the browser through Gatehouse to the real upstream provider
// (JIT creates the user); the second gets in on Gatehouse's session
// without the upstream. Then RP-initiated logout ends it for both.
func TestOPTwoAppsOneUpstreamLogin(t *testing.T) {
	s := newOPStack(t)
	ctx := context.Background()
	wiki, wsec := s.app(t, "Wiki", "https://wiki.example/cb")
	crm, csec := s.app(t, "CRM", "https://crm.example/cb")
	issuer := s.srv.URL + "/t/acme"
	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	browser, ct := s.browser()

	signIn := func(a *gatehouse.App, sec string) (*oauth2.Token, *gooidc.IDToken) {
		t.Helper()
		cfg := oauth2.Config{ClientID: a.ClientID, ClientSecret: sec, Endpoint: provider.Endpoint(),
			RedirectURL: a.RedirectURIs[0], Scopes: []string{gooidc.ScopeOpenID, "email", "profile", "groups", gooidc.ScopeOfflineAccess}}
		var b [32]byte
		_, _ = rand.Read(b[:])
		verifier := base64.RawURLEncoding.EncodeToString(b[:])
		d := sha256.Sum256(b[:])
		state, nonce := base64.RawURLEncoding.EncodeToString(d[:8]), base64.RawURLEncoding.EncodeToString(d[8:16])
		resp, err := browser.Get(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce),
			oauth2.SetAuthURLParam("login_hint", "ada@example.com")))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("sign-in to %s ended with %d at %s: %s", a.Name, resp.StatusCode, resp.Request.URL, body)
		}
		if loc.Query().Get("state") != state {
			t.Fatalf("state %q", loc.Query().Get("state"))
		}
		tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		idt, err := provider.Verifier(&gooidc.Config{ClientID: a.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatalf("ID token: %v", err)
		}
		if idt.Nonce != nonce {
			t.Fatal("nonce")
		}
		return tok, idt
	}

	tok, idt := signIn(wiki, wsec)
	upstreamHits := ct.n.Load()
	if upstreamHits == 0 {
		t.Fatal("the first app's sign-in did not go to the upstream provider")
	}
	var claims struct {
		Email  string   `json:"email"`
		Name   string   `json:"name"`
		Groups []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims.Email != "ada@example.com" || claims.Name != "Ada Lovelace" {
		t.Fatalf("claims %+v", claims)
	}
	// The user was created just in time, and the token's subject is it.
	var u *gatehouse.User
	if err := s.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		u, err = tx.GetUserByEmail(ctx, s.tenant.ID, "ada@example.com")
		return err
	}); err != nil {
		t.Fatalf("JIT user: %v", err)
	}
	if idt.Subject != u.ID || u.Source != gatehouse.SourceJIT {
		t.Fatalf("sub %q, user %+v", idt.Subject, u)
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Email != "ada@example.com" || ui.Subject != u.ID {
		t.Fatalf("userinfo %+v %v", ui, err)
	}

	// The second app: single sign-on, no new visit to the upstream.
	_, idt2 := signIn(crm, csec)
	if ct.n.Load() != upstreamHits {
		t.Fatalf("the second app went to the upstream again (%d requests, before %d)", ct.n.Load(), upstreamHits)
	}
	if idt2.Subject != u.ID {
		t.Fatalf("second app sub %q", idt2.Subject)
	}

	// RP-initiated logout from the wiki ends the Gatehouse session: the
	// CRM's next sign-in needs the upstream again.
	v := url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {"https://wiki.example/cb/bye"}}
	resp, err := browser.Get(issuer + "/end_session?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://wiki.example/cb/bye" {
		t.Fatalf("end_session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	before := ct.n.Load()
	signIn(crm, csec)
	if ct.n.Load() == before {
		t.Fatal("signed in without the upstream after logout")
	}
}
