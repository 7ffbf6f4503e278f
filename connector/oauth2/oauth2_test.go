package oauth2_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oauth2"
	"github.com/gatehouse-sso/gatehouse/connector/oidc"
	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

// provider is a GitHub-style OAuth 2.0 server: no ID token, a JSON API.
type provider struct {
	srv       *httptest.Server
	mu        sync.Mutex
	secret    string
	challenge map[string]string // code → PKCE challenge ("" when none sent)
	user      map[string]any
	emails    []map[string]any
	formToken bool // answer the token endpoint form-encoded, as GitHub does by default
	lastAuth  url.Values
}

func newProvider(t *testing.T) *provider {
	p := &provider{secret: "gh-secret", challenge: map[string]string{},
		user: map[string]any{"data": map[string]any{"user": map[string]any{"id": 583231.0, "login": "octocat",
			"profile": map[string]any{"name": "The Octocat"}}, "emails": []any{map[string]any{"email": "octo@example.com", "verified": true}}}}}
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		q := r.URL.Query()
		p.lastAuth = q
		code := "code-" + q.Get("state")[:8]
		p.challenge[code] = q.Get("code_challenge")
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		r.ParseForm()
		id, sec, ok := r.BasicAuth()
		if !ok {
			id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != "client-1" || sec != p.secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		ch, ok := p.challenge[r.PostForm.Get("code")]
		delete(p.challenge, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || (ch != "" && base64.RawURLEncoding.EncodeToString(sum[:]) != ch) || (ch == "" && r.PostForm.Get("code_verifier") != "") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		if p.formToken {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			w.Write([]byte("access_token=at-1&token_type=bearer&scope=read%3Auser"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"at-1","token_type":"Bearer"}`))
	})
	mux.HandleFunc("/user", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer at-1" {
			w.WriteHeader(401)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		json.NewEncoder(w).Encode(p.user)
	})
	mux.HandleFunc("/user/emails", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(p.emails)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

type fixture struct {
	t    *testing.T
	p    *provider
	env  connector.Env
	typ  *connector.Type
	conn *gatehouse.Connection
	sec  json.RawMessage
	c    connector.Connector
}

func newFixture(t *testing.T, in map[string]any) (*fixture, error) {
	p := newProvider(t)
	f := &fixture{t: t, p: p, typ: oauth2.Type(), conn: &gatehouse.Connection{ID: "con_2", TenantID: "ten_1"},
		env: connector.Env{PublicURL: "https://gatehouse.test", Clock: gatehouse.SystemClock{},
			HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 5 * time.Second})}}
	base := map[string]any{"authorize_url": p.srv.URL + "/authorize", "token_url": p.srv.URL + "/token",
		"userinfo_url": p.srv.URL + "/user", "client_id": "client-1", "client_secret": "gh-secret",
		"subject_path": "data.user.id", "email_path": "data.emails.0.email", "email_verified_path": "data.emails.0.verified",
		"username_path": "data.user.login", "name_path": "data.user.profile.name"}
	for k, v := range in {
		base[k] = v
	}
	return f, f.configure(base)
}

func (f *fixture) configure(in map[string]any) error {
	c, sec, err := oidctest.Configure(f.typ, f.env, f.conn, f.sec, in)
	if err == nil {
		f.c, f.sec = c, sec
	}
	return err
}

func (f *fixture) login(mutate func(cb *url.URL)) (*gatehouse.Identity, error) {
	flow := &connector.Flow{ID: "flw"}
	act, err := f.c.Begin(context.Background(), flow)
	if err != nil {
		f.t.Fatal(err)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(act.RedirectURL)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	if mutate != nil {
		mutate(cb)
	}
	r := httptest.NewRequest("GET", cb.String(), nil)
	if f.c.(connector.FlowStateFinder).FlowState(r) != cb.Query().Get("state") {
		f.t.Fatal("FlowState")
	}
	return f.c.Finish(context.Background(), flow, r)
}

func TestNestedClaimPaths(t *testing.T) {
	for _, method := range []string{oidc.AuthBasic, oidc.AuthPost} {
		f, err := newFixture(t, map[string]any{"token_endpoint_auth_method": method})
		if err != nil {
			t.Fatal(err)
		}
		id, err := f.login(nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if id.Subject != "583231" || id.Email != "octo@example.com" || id.EmailVerified == nil || !*id.EmailVerified ||
			id.Username != "octocat" || id.DisplayName != "The Octocat" || id.Issuer != f.p.srv.URL {
			t.Fatalf("%s: identity %+v", method, id)
		}
		q := f.p.lastAuth
		if q.Get("code_challenge_method") != "S256" || q.Get("redirect_uri") != "https://gatehouse.test/sso/oauth2/con_2/callback" {
			t.Fatalf("authorization request %v", q)
		}
	}
}

func TestGitHubPreset(t *testing.T) {
	f, err := newFixture(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := f.p.srv.URL
	f.p.user = map[string]any{"id": 1.0, "login": "octocat", "name": "Mona", "email": "public@example.org"}
	f.p.emails = []map[string]any{{"email": "other@example.com", "primary": false, "verified": true},
		{"email": "mona@example.com", "primary": true, "verified": false}}
	f.p.formToken = true
	f.conn.Config, f.sec = nil, nil
	if err := f.configure(map[string]any{"preset": "github", "authorize_url": u + "/authorize", "token_url": u + "/token",
		"userinfo_url": u + "/user", "emails_url": u + "/user/emails", "client_id": "client-1", "client_secret": "gh-secret"}); err != nil {
		t.Fatal(err)
	}
	id, err := f.login(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The primary address, with its own (false) verified flag; never the
	// public profile email.
	if id.Subject != "1" || id.Email != "mona@example.com" || id.EmailVerified == nil || *id.EmailVerified || id.Username != "octocat" {
		t.Fatalf("identity %+v", id)
	}
	d := f.typ.Describe(f.env, f.conn)
	if d["subject_path"] != "id" || d["redirect_uri"] != "https://gatehouse.test/sso/oauth2/con_2/callback" {
		t.Fatalf("describe %v", d)
	}
	if b, _ := json.Marshal(d); strings.Contains(string(b), "gh-secret") {
		t.Fatal("secret in describe")
	}
}

func TestRefusals(t *testing.T) {
	f, err := newFixture(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.login(func(cb *url.URL) {
		q := cb.Query()
		q.Set("state", "forged")
		cb.RawQuery = q.Encode()
	}); gatehouse.ErrorReason(err) != oidc.ReasonState {
		t.Fatalf("state: %v", err)
	}
	if _, err := f.login(func(cb *url.URL) {
		q := cb.Query()
		q.Del("code")
		q.Set("error", "access_denied")
		cb.RawQuery = q.Encode()
	}); gatehouse.ErrorCode(err) != gatehouse.EFORBIDDEN || !strings.Contains(gatehouse.ErrorMessage(err), "access_denied") {
		t.Fatalf("access_denied: %v", err)
	}
	f.p.secret = "rotated"
	if _, err := f.login(nil); gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE || !strings.Contains(gatehouse.ErrorMessage(err), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
	f.p.secret = "gh-secret"
	f.p.user = map[string]any{"login": "no-id"}
	if _, err := f.login(nil); gatehouse.ErrorReason(err) != oidc.ReasonMissingClaims {
		t.Fatalf("no subject: %v", err)
	}
}

func TestPKCEOff(t *testing.T) {
	f, err := newFixture(t, map[string]any{"pkce": false})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.login(nil); err != nil {
		t.Fatal(err)
	}
	if f.p.lastAuth.Has("code_challenge") {
		t.Fatal("code_challenge sent with pkce off")
	}
}

func TestConfigureErrors(t *testing.T) {
	for _, tc := range []struct {
		in    map[string]any
		field string
	}{
		{map[string]any{"authorize_url": "http://github.example/authorize"}, "authorize_url"},
		{map[string]any{"token_url": ""}, "token_url"},
		{map[string]any{"userinfo_url": "ftp://x"}, "userinfo_url"},
		{map[string]any{"client_secret": ""}, "client_secret"},
		{map[string]any{"client_id": ""}, "client_id"},
		{map[string]any{"subject_path": "data..id"}, "subject_path"},
		{map[string]any{"token_endpoint_auth_method": "private_key_jwt"}, "token_endpoint_auth_method"},
		{map[string]any{"auth_params": map[string]string{"state": "x"}}, "auth_params"},
		{map[string]any{"preset": "gitlab"}, "preset"},
		{map[string]any{"issuer": "https://x"}, "issuer"},
	} {
		if _, err := newFixture(t, tc.in); gatehouse.ErrorField(err) != tc.field {
			t.Errorf("%v: got %v", tc.in, err)
		}
	}
}

func TestLookup(t *testing.T) {
	raw := map[string]any{"a.b": "exact", "a": map[string]any{"b": "nested", "list": []any{"x", map[string]any{"y": 2.0}}}}
	for path, want := range map[string]any{"a.b": "exact", "a.list.0": "x", "a.list.1.y": 2.0} {
		if v, ok := oauth2.Lookup(raw, path); !ok || v != want {
			t.Errorf("%s: %v %v", path, v, ok)
		}
	}
	for _, path := range []string{"a.list.2", "a.list.-1", "a.nope", "a.list.x"} {
		if _, ok := oauth2.Lookup(raw, path); ok {
			t.Errorf("%s found", path)
		}
	}
}
