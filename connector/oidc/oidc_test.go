package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oidc"
	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const secretValue = "s3cret-for-tests-0123456789abcdefghij"

type fixture struct {
	t     *testing.T
	clk   *clock
	idp   *oidctest.Provider
	env   connector.Env
	typ   *connector.Type
	conn  *gatehouse.Connection
	sec   json.RawMessage
	cnctr connector.Connector
}

func newFixture(t *testing.T, in map[string]any) *fixture {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
	idp := oidctest.New(clk, "client-1", secretValue)
	t.Cleanup(idp.Close)
	f := &fixture{t: t, clk: clk, idp: idp, typ: oidc.Type(),
		env: connector.Env{PublicURL: "https://gatehouse.test", Clock: clk,
			HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 5 * time.Second})},
		conn: &gatehouse.Connection{ID: "con_1", TenantID: "ten_1", Type: "oidc", Enabled: true}}
	base := map[string]any{"issuer": idp.Issuer, "client_id": "client-1", "client_secret": secretValue}
	for k, v := range in {
		base[k] = v
	}
	if err := f.configure(base); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return f
}

func (f *fixture) configure(in map[string]any) error {
	c, sec, err := oidctest.Configure(f.typ, f.env, f.conn, f.sec, in)
	if err == nil {
		f.cnctr, f.sec = c, sec
	}
	return err
}

// login runs Begin, the provider's authorization endpoint and Finish.
func (f *fixture) login() (*gatehouse.Identity, error) {
	f.t.Helper()
	flow := &connector.Flow{ID: "flw", TenantID: "ten_1", ConnectionID: "con_1", LoginHint: "ada@example.com"}
	act, err := f.cnctr.Begin(context.Background(), flow)
	if err != nil {
		f.t.Fatalf("begin: %v", err)
	}
	return f.finish(flow, f.authorize(act.RedirectURL))
}

func (f *fixture) authorize(authURL string) string {
	f.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("authorize: %s", resp.Status)
	}
	return resp.Header.Get("Location")
}

func (f *fixture) finish(flow *connector.Flow, callback string) (*gatehouse.Identity, error) {
	r := httptest.NewRequest("GET", callback, nil)
	if got := f.cnctr.(connector.FlowStateFinder).FlowState(r); got != r.URL.Query().Get("state") {
		f.t.Fatalf("FlowState %q", got)
	}
	return f.cnctr.Finish(context.Background(), flow, r)
}

func TestHappyPaths(t *testing.T) {
	for _, method := range []string{oidc.AuthBasic, oidc.AuthPost, oidc.AuthPrivateKeyJWT} {
		t.Run(method, func(t *testing.T) {
			f := newFixture(t, map[string]any{"token_endpoint_auth_method": method,
				"auth_params": map[string]string{"prompt": "select_account"}})
			if method == oidc.AuthPrivateKeyJWT {
				d := f.typ.Describe(f.env, f.conn)
				jwks, ok := d["client_jwks"].(*jose.JSONWebKeySet)
				if !ok || len(jwks.Keys) != 1 || !jwks.Keys[0].IsPublic() {
					t.Fatalf("describe has no public client JWKS: %#v", d["client_jwks"])
				}
				f.idp.Do(func(p *oidctest.Provider) { p.ClientJWKS = jwks; p.ClientSecret = "not-used" })
			}
			f.idp.Do(func(p *oidctest.Provider) {
				p.Claims["groups"] = []string{"eng", "ops"}
				p.Claims["given_name"] = "Ada"
			})
			id, err := f.login()
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if method == oidc.AuthPrivateKeyJWT {
				checkAssertionCertificate(t, f)
			}
			if id.Subject != "user-1" || id.Issuer != f.idp.Issuer || id.Email != "ada@example.com" ||
				id.EmailVerified == nil || !*id.EmailVerified || id.DisplayName != "Ada Lovelace" || id.GivenName != "Ada" ||
				strings.Join(id.Groups, ",") != "eng,ops" || id.ConnectionID != "con_1" || id.TenantID != "ten_1" {
				t.Fatalf("identity %+v", id)
			}
			if id.Raw["nonce"] == nil || id.Raw["sub"] != "user-1" {
				t.Fatalf("raw claims %v", id.Raw)
			}
			q := f.idp.LastAuthed
			for k, want := range map[string]string{"login_hint": "ada@example.com", "prompt": "select_account",
				"code_challenge_method": "S256", "scope": "openid email profile",
				"redirect_uri": "https://gatehouse.test/sso/oidc/con_1/callback"} {
				if q.Get(k) != want {
					t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
				}
			}
		})
	}
}

// checkAssertionCertificate: the client assertion names the connection's
// certificate (shown by Describe) in x5t and x5t#S256, as Entra ID needs.
func checkAssertionCertificate(t *testing.T, f *fixture) {
	t.Helper()
	d := f.typ.Describe(f.env, f.conn)
	block, _ := pem.Decode([]byte(d["client_certificate"].(string)))
	if block == nil {
		t.Fatalf("no client certificate in describe: %v", d)
	}
	var assertion string
	f.idp.Do(func(p *oidctest.Provider) { assertion = p.LastAssertion })
	jws, err := jose.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	s1, s256 := sha1.Sum(block.Bytes), sha256.Sum256(block.Bytes)
	h := jws.Signatures[0].Header.ExtraHeaders
	if h["x5t"] != base64.RawURLEncoding.EncodeToString(s1[:]) || h["x5t#S256"] != base64.RawURLEncoding.EncodeToString(s256[:]) {
		t.Fatalf("assertion headers %v", h)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.PublicKey.(*rsa.PublicKey).Equal(d["client_jwks"].(*jose.JSONWebKeySet).Keys[0].Key) {
		t.Fatalf("certificate is not for the client key: %v", err)
	}
}

func TestPrivateKeyJWTKeyAndCertificate(t *testing.T) {
	f := newFixture(t, map[string]any{"token_endpoint_auth_method": oidc.AuthPrivateKeyJWT})
	desc := func() (string, string) {
		d := f.typ.Describe(f.env, f.conn)
		return d["client_key_id"].(string), d["client_certificate"].(string)
	}
	kid, cert := desc()
	// An unrelated update keeps the key and its certificate.
	if err := f.configure(map[string]any{"scopes": []string{"openid", "email"}}); err != nil {
		t.Fatal(err)
	}
	if k2, c2 := desc(); k2 != kid || c2 != cert {
		t.Fatal("key or certificate changed on an unrelated update")
	}
	// A new key gets a new certificate.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err := f.configure(map[string]any{"private_key": pemKey}); err != nil {
		t.Fatal(err)
	}
	if k2, c2 := desc(); k2 == kid || c2 == cert {
		t.Fatal("new key kept the old kid or certificate")
	}
	// A certificate for another key is refused.
	if err := f.configure(map[string]any{"client_certificate": cert}); gatehouse.ErrorField(err) != "client_certificate" {
		t.Fatalf("mismatched certificate: %v", err)
	}
	// Back to a secret: key material is dropped.
	if err := f.configure(map[string]any{"token_endpoint_auth_method": oidc.AuthBasic}); err != nil {
		t.Fatal(err)
	}
	if d := f.typ.Describe(f.env, f.conn); d["client_jwks"] != nil || strings.Contains(string(f.sec), "PRIVATE KEY") {
		t.Fatalf("key material kept: %v", d)
	}
}

func TestGoogleHostedDomains(t *testing.T) {
	f := newFixture(t, map[string]any{"preset": "google", "hosted_domains": []string{"Example.com"}})
	if _, err := f.login(); gatehouse.ErrorReason(err) != oidc.ReasonHostedDomain {
		t.Fatalf("consumer account (no hd): %v", err)
	}
	if f.idp.LastAuthed.Get("hd") != "example.com" {
		t.Fatalf("hd parameter %q", f.idp.LastAuthed.Get("hd"))
	}
	f.idp.Do(func(p *oidctest.Provider) { p.Claims["hd"] = "other.example" })
	if _, err := f.login(); gatehouse.ErrorReason(err) != oidc.ReasonHostedDomain {
		t.Fatalf("other domain: %v", err)
	}
	f.idp.Do(func(p *oidctest.Provider) { p.Claims["hd"] = "example.com" })
	if _, err := f.login(); err != nil {
		t.Fatal(err)
	}
	if err := f.configure(map[string]any{"preset": "", "hosted_domains": []string{"x.example"}}); gatehouse.ErrorField(err) != "hosted_domains" {
		t.Fatalf("hosted_domains without the google preset: %v", err)
	}
}

func TestEmailVerifiedAbsentIsNil(t *testing.T) {
	f := newFixture(t, nil)
	f.idp.Do(func(p *oidctest.Provider) { delete(p.Claims, "email_verified") })
	id, err := f.login()
	if err != nil || id.EmailVerified != nil {
		t.Fatalf("got %v %v", id, err)
	}
}

// Each forged or defective ID token is refused with EFORBIDDEN and a cause
// that names the check.
func TestForgedIDTokensRefused(t *testing.T) {
	pubkeyHS := oidctest.Forge{Alg: "HS256-pubkey"}
	for _, tc := range []struct {
		name  string
		in    map[string]any // extra connection config
		forge oidctest.Forge
		cause string
	}{
		{"tampered signature", nil, oidctest.Forge{TamperSignature: true}, "signature does not verify"},
		{"expired", nil, oidctest.Forge{Claims: func(c map[string]any) { c["exp"] = c["iat"].(int64) - 3*60 }}, "expired"},
		{"future iat", nil, oidctest.Forge{Claims: func(c map[string]any) { c["iat"] = c["iat"].(int64) + 10*60; c["exp"] = c["iat"].(int64) + 600 }}, "issued in the future"},
		{"no iat", nil, oidctest.Forge{Claims: func(c map[string]any) { delete(c, "iat") }}, "no iat"},
		{"wrong audience", nil, oidctest.Forge{Claims: func(c map[string]any) { c["aud"] = "client-2" }}, "expected audience"},
		{"extra untrusted audience", nil, oidctest.Forge{Claims: func(c map[string]any) {
			c["aud"] = []string{"client-1", "other-app"}
			c["azp"] = "client-1"
		}}, `untrusted audience "other-app"`},
		{"extra trusted audience without azp", map[string]any{"trusted_audiences": []string{"api://x"}},
			oidctest.Forge{Claims: func(c map[string]any) { c["aud"] = []string{"client-1", "api://x"} }}, "no azp"},
		{"azp names another client", nil, oidctest.Forge{Claims: func(c map[string]any) { c["azp"] = "client-2" }}, "azp"},
		{"wrong issuer", nil, oidctest.Forge{Claims: func(c map[string]any) { c["iss"] = "https://evil.example" }}, "different provider"},
		{"wrong nonce", nil, oidctest.Forge{Claims: func(c map[string]any) { c["nonce"] = "replayed" }}, "nonce mismatch"},
		{"no nonce", nil, oidctest.Forge{Claims: func(c map[string]any) { delete(c, "nonce") }}, "nonce mismatch"},
		{"no sub", nil, oidctest.Forge{Claims: func(c map[string]any) { delete(c, "sub") }}, "no sub"},
		{"alg none", nil, oidctest.Forge{Alg: "none"}, "unexpected signature algorithm"},
		{"HS256 keyed with the public key", nil, pubkeyHS, "unexpected signature algorithm"},
		{"HS256 keyed with the public key, HS256 allowed", map[string]any{"allowed_algs": []string{"RS256", "HS256"}}, pubkeyHS, "signature"},
		{"algorithm not allowed", map[string]any{"allowed_algs": []string{"ES256"}}, oidctest.Forge{}, "unexpected signature algorithm"},
		{"unknown kid", nil, oidctest.Forge{UnknownKey: true}, `no key with kid "unknown-kid"`},
		{"userinfo sub mismatch", map[string]any{"userinfo": "always"}, oidctest.Forge{UserInfo: func(c map[string]any) { c["sub"] = "someone-else" }}, "userinfo sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.in)
			f.idp.SetNext(tc.forge)
			id, err := f.login()
			if err == nil {
				t.Fatalf("accepted: %+v", id)
			}
			if gatehouse.ErrorCode(err) != gatehouse.EFORBIDDEN {
				t.Fatalf("code %s: %v", gatehouse.ErrorCode(err), err)
			}
			if !strings.Contains(err.Error(), tc.cause) {
				t.Fatalf("error %q does not mention %q", err, tc.cause)
			}
			if msg := gatehouse.ErrorMessage(err); strings.Contains(msg, "kid") || msg == "" {
				t.Fatalf("user message leaks detail or is empty: %q", msg)
			}
		})
	}
}

func TestHS256WithClientSecretWhenAllowed(t *testing.T) {
	f := newFixture(t, map[string]any{"allowed_algs": []string{"RS256", "HS256"}})
	f.idp.SetNext(oidctest.Forge{Alg: "HS256-secret"})
	if _, err := f.login(); err != nil {
		t.Fatalf("HS256 with the client secret, explicitly allowed: %v", err)
	}
	g := newFixture(t, nil)
	g.idp.SetNext(oidctest.Forge{Alg: "HS256-secret"})
	if _, err := g.login(); err == nil {
		t.Fatal("HS256 accepted although not allowed")
	}
}

func TestKeyRotationRefetchesOncePerSecond(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.login(); err != nil {
		t.Fatal(err)
	}
	if f.idp.Hits() != 1 {
		t.Fatalf("JWKS fetched %d times", f.idp.Hits())
	}
	// Within the interval, forged unknown kids do not cause fetches.
	for i := 0; i < 3; i++ {
		f.idp.SetNext(oidctest.Forge{UnknownKey: true})
		if _, err := f.login(); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	// A tampered token with a known kid never causes a fetch.
	f.clk.Add(2 * time.Second)
	f.idp.SetNext(oidctest.Forge{TamperSignature: true})
	if _, err := f.login(); err == nil {
		t.Fatal("tampered accepted")
	}
	if f.idp.Hits() != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", f.idp.Hits())
	}
	// The IdP rotates: the new kid is fetched at once.
	f.idp.Rotate(oidctest.NewKey("k2", jose.ES256), false)
	if _, err := f.login(); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if f.idp.Hits() != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", f.idp.Hits())
	}
	// Just after that fetch another rotation is not picked up until the
	// interval has passed.
	f.idp.Rotate(oidctest.NewKey("k3", jose.ES256), true)
	if _, err := f.login(); err == nil {
		t.Fatal("k3 accepted within the refetch interval")
	}
	f.clk.Add(oidc.KeysMinInterval)
	if _, err := f.login(); err != nil {
		t.Fatalf("k3 after the interval: %v", err)
	}
	// The cached set expires after KeysTTL.
	f.clk.Add(oidc.KeysTTL)
	before := f.idp.Hits()
	if _, err := f.login(); err != nil || f.idp.Hits() != before+1 {
		t.Fatalf("after TTL: %v, hits %d→%d", err, before, f.idp.Hits())
	}
}

func TestClaimsOnlyThroughUserInfo(t *testing.T) {
	f := newFixture(t, nil)
	f.idp.Do(func(p *oidctest.Provider) {
		p.UserInfoClaims = map[string]any{"sub": "user-1", "email": "ada@example.com", "email_verified": true, "name": "Ada L", "groups": []string{"eng"}}
		p.Claims = map[string]any{"sub": "user-1"}
	})
	id, err := f.login()
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "ada@example.com" || id.DisplayName != "Ada L" || len(id.Groups) != 1 || id.EmailVerified == nil {
		t.Fatalf("identity %+v", id)
	}
	// userinfo "never": no email at all.
	g := newFixture(t, map[string]any{"userinfo": "never"})
	g.idp.Do(func(p *oidctest.Provider) { p.Claims = map[string]any{"sub": "user-1"} })
	if id, err := g.login(); err != nil || id.Email != "" {
		t.Fatalf("never: %+v %v", id, err)
	}
}

func TestRFC9207Issuer(t *testing.T) {
	f := newFixture(t, nil)
	f.idp.Do(func(p *oidctest.Provider) { p.IssParameter = true })
	f.clk.Add(oidc.DiscoveryTTL) // pick up the new discovery document
	if _, err := f.login(); err != nil {
		t.Fatalf("matching iss: %v", err)
	}
	for name, v := range map[string]string{"mismatch": "https://other-idp.example", "missing": "-"} {
		f.idp.Do(func(p *oidctest.Provider) { p.IssValue = v })
		_, err := f.login()
		if gatehouse.ErrorReason(err) != oidc.ReasonIssuer {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// iss sent by a provider that does not advertise it is still checked.
	g := newFixture(t, nil)
	g.idp.Do(func(p *oidctest.Provider) { p.IssValue = "https://other-idp.example" })
	if _, err := g.login(); gatehouse.ErrorReason(err) != oidc.ReasonIssuer {
		t.Fatalf("unadvertised mismatch: %v", err)
	}
}

func TestResponseErrors(t *testing.T) {
	f := newFixture(t, nil)
	f.idp.Do(func(p *oidctest.Provider) { p.ErrorResponse = "access_denied" })
	_, err := f.login()
	if gatehouse.ErrorCode(err) != gatehouse.EFORBIDDEN || !strings.Contains(gatehouse.ErrorMessage(err), "access_denied") ||
		strings.Contains(gatehouse.ErrorMessage(err), "script") {
		t.Fatalf("access_denied: %v / %q", err, gatehouse.ErrorMessage(err))
	}
	f.idp.Do(func(p *oidctest.Provider) { p.ErrorResponse = "temporarily_unavailable" })
	if _, err := f.login(); gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE {
		t.Fatalf("temporarily_unavailable: %v", err)
	}
	f.idp.Do(func(p *oidctest.Provider) { p.ErrorResponse = "" })

	// State from another browser.
	flow := &connector.Flow{ID: "flw"}
	act, _ := f.cnctr.Begin(context.Background(), flow)
	cb := f.authorize(act.RedirectURL)
	other := *flow
	other.State = "another-state"
	if _, err := f.finish(&other, cb); gatehouse.ErrorReason(err) != oidc.ReasonState {
		t.Fatalf("state: %v", err)
	}
	// A repeated parameter.
	if _, err := f.finish(flow, cb+"&code=other"); gatehouse.ErrorReason(err) != oidc.ReasonState {
		t.Fatalf("repeated code: %v", err)
	}
	// No code.
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Del("code")
	u.RawQuery = q.Encode()
	if _, err := f.finish(flow, u.String()); gatehouse.ErrorReason(err) != oidc.ReasonNoCode {
		t.Fatalf("no code: %v", err)
	}
	// The code is single-use at the provider: replaying the callback fails.
	if _, err := f.finish(flow, cb); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := f.finish(flow, cb); gatehouse.ErrorReason(err) != oidc.ReasonExchange {
		t.Fatalf("replayed code: %v", err)
	}
}

// TestSecretWithReservedCharacters: a client id and secret with characters
// that Basic credentials and forms reserve reach the provider intact with
// either method (RFC 6749 §2.3.1 form-encodes them before Basic).
func TestSecretWithReservedCharacters(t *testing.T) {
	const id, secret = "client:1 é", "s3c:r+t/%&= é-0123456789abcdefghij"
	for _, method := range []string{oidc.AuthBasic, oidc.AuthPost} {
		t.Run(method, func(t *testing.T) {
			f := newFixture(t, map[string]any{"token_endpoint_auth_method": method, "client_id": id, "client_secret": secret})
			f.idp.Do(func(p *oidctest.Provider) { p.ClientID, p.ClientSecret = id, secret; p.Claims["aud"] = id })
			if _, err := f.login(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWrongClientSecret(t *testing.T) {
	f := newFixture(t, nil)
	f.idp.Do(func(p *oidctest.Provider) { p.ClientSecret = "rotated-at-the-idp" })
	_, err := f.login()
	if gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE || !strings.Contains(gatehouse.ErrorMessage(err), "invalid_client") {
		t.Fatalf("got %v", err)
	}
}

func TestIdPDown(t *testing.T) {
	f := newFixture(t, nil)
	f.idp.Close()
	// Past the refresh interval the cached document keeps serving while
	// the issuer is unreachable...
	f.clk.Add(oidc.DiscoveryTTL + time.Minute)
	if _, err := f.cnctr.Begin(context.Background(), &connector.Flow{}); err != nil {
		t.Fatalf("stale discovery not served: %v", err)
	}
	// ...but not forever.
	f.clk.Add(24 * time.Hour)
	flow := &connector.Flow{}
	_, err := f.cnctr.Begin(context.Background(), flow)
	if gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE {
		t.Fatalf("got %v", err)
	}
}

// A failing issuer is asked again only after a pause: meanwhile logins
// fail at once instead of queueing behind its timeout.
func TestDiscoveryFailureRemembered(t *testing.T) {
	f := newFixture(t, nil)
	hits := func() (n int) { f.idp.Do(func(p *oidctest.Provider) { n = p.DiscoveryHits }); return }
	f.idp.Do(func(p *oidctest.Provider) { p.Down = true })
	f.clk.Add(25 * time.Hour)
	begin := func() error { _, err := f.cnctr.Begin(context.Background(), &connector.Flow{}); return err }
	h0 := hits()
	if err := begin(); gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE || hits() != h0+1 {
		t.Fatalf("first: %v, hits %d", err, hits()-h0)
	}
	if err := begin(); gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE || hits() != h0+1 {
		t.Fatalf("within the pause: %v, hits %d", err, hits()-h0)
	}
	f.idp.Do(func(p *oidctest.Provider) { p.Down = false })
	f.clk.Add(5 * time.Second)
	if err := begin(); err != nil || hits() != h0+2 {
		t.Fatalf("after the pause: %v, hits %d", err, hits()-h0)
	}
}

// Logins queued behind a discovery fetch that timed out fail at once
// rather than each waiting for its own timeout (real clock).
func TestSlowIssuerDoesNotQueueLogins(t *testing.T) {
	idp := oidctest.New(gatehouse.SystemClock{}, "c", "s")
	defer idp.Close()
	idp.Do(func(p *oidctest.Provider) { p.Delay = 5 * time.Second })
	env := connector.Env{PublicURL: "https://gatehouse.test", Clock: gatehouse.SystemClock{},
		HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 300 * time.Millisecond})}
	stored := &gatehouse.Connection{ID: "con_s", Config: json.RawMessage(`{"issuer":"` + idp.Issuer + `","client_id":"c","scopes":["openid"],"allowed_algs":["RS256"]}`)}
	c, err := oidc.Type().Open(context.Background(), env, stored, json.RawMessage(`{"client_secret":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Begin(context.Background(), &connector.Flow{}); gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE {
				t.Errorf("begin: %v", err)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("6 logins took %v against a 300ms timeout", d)
	}
}

func TestEntraMultiTenant(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
	idp := oidctest.New(clk, "client-1", secretValue)
	defer idp.Close()
	template := idp.Server.URL + "/{tenantid}/v2.0"
	idp.Do(func(p *oidctest.Provider) {
		p.Issuer = template
		p.Claims = map[string]any{"sub": "pairwise-sub", "tid": "tid-a", "oid": "oid-1", "email": "ada@contoso.example",
			"name": "Ada", "_claim_names": map[string]any{"groups": "src1"},
			"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": "https://graph.microsoft.com/v1.0/users/oid-1/getMemberObjects"}}}
	})
	f := &fixture{t: t, clk: clk, idp: idp, typ: oidc.Type(),
		env:  connector.Env{PublicURL: "https://gatehouse.test", Clock: clk, HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true})},
		conn: &gatehouse.Connection{ID: "con_e", TenantID: "ten_1"}}
	if err := f.configure(map[string]any{"preset": "entra", "issuer": idp.Server.URL + "/organizations/v2.0",
		"client_id": "client-1", "client_secret": secretValue}); err != nil {
		t.Fatal(err)
	}
	tokIss := func(tid string) oidctest.Forge {
		return oidctest.Forge{Claims: func(c map[string]any) { c["iss"] = strings.Replace(template, "{tenantid}", tid, 1) }}
	}
	idp.SetNext(tokIss("tid-a"))
	id, err := f.login()
	if err != nil {
		t.Fatal(err)
	}
	// Open to every directory: without xms_edov the email is unverified
	// (nOAuth: any directory's admin can set any address).
	if id.Subject != "tid-a/oid-1" || !id.GroupsIncomplete || id.Raw[oidc.RawGroupsOverage] != true || id.Groups != nil ||
		id.EmailVerified == nil || *id.EmailVerified {
		t.Fatalf("identity %+v", id)
	}
	// xms_edov=true: the directory owns the email's domain.
	idp.SetNext(oidctest.Forge{Claims: func(c map[string]any) {
		c["iss"] = strings.Replace(template, "{tenantid}", "tid-a", 1)
		c["xms_edov"] = true
	}})
	if id, err := f.login(); err != nil || id.EmailVerified == nil || !*id.EmailVerified {
		t.Fatalf("xms_edov=true: %+v, %v", id, err)
	}
	// The issuer must be the template completed with the token's tid.
	idp.SetNext(tokIss("tid-b"))
	if _, err := f.login(); err == nil || !strings.Contains(err.Error(), "tid-a") {
		t.Fatalf("issuer of another tenant: %v", err)
	}
	// allowed_tenant_ids restricts directories.
	if err := f.configure(map[string]any{"allowed_tenant_ids": []string{"tid-z"}}); err != nil {
		t.Fatal(err)
	}
	idp.SetNext(tokIss("tid-a"))
	if _, err := f.login(); err == nil || !strings.Contains(err.Error(), "allowed_tenant_ids") {
		t.Fatalf("tenant not allowed: %v", err)
	}
	// A listed directory's admins are trusted: the email's status is
	// unknown, and the JIT policy decides as for a single directory.
	if err := f.configure(map[string]any{"allowed_tenant_ids": []string{"tid-a"}}); err != nil {
		t.Fatal(err)
	}
	idp.SetNext(tokIss("tid-a"))
	if id, err := f.login(); err != nil || id.EmailVerified != nil {
		t.Fatalf("allowed directory: %+v, %v", id, err)
	}
	// A non-Entra connection never accepts a templated discovery document,
	// not even from the cache the Entra connection filled.
	g := &fixture{t: t, clk: clk, idp: idp, typ: f.typ, env: f.env, conn: &gatehouse.Connection{ID: "con_g"}}
	err = g.configure(map[string]any{"issuer": idp.Server.URL + "/organizations/v2.0", "client_id": "c", "client_secret": "s"})
	if gatehouse.ErrorField(err) != "issuer" {
		t.Fatalf("generic connection with a template issuer: %v", err)
	}
	stored := &gatehouse.Connection{ID: "con_h", Config: json.RawMessage(`{"issuer":"` + idp.Server.URL + `/organizations/v2.0","client_id":"c","scopes":["openid"],"allowed_algs":["RS256"]}`)}
	h, err := f.typ.Open(context.Background(), f.env, stored, json.RawMessage(`{"client_secret":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Begin(context.Background(), &connector.Flow{}); gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE {
		t.Fatalf("a stored generic connection used the Entra document: %v", err)
	}
}

func TestConfigure(t *testing.T) {
	f := newFixture(t, nil)
	d := f.typ.Describe(f.env, f.conn)
	if d["redirect_uri"] != "https://gatehouse.test/sso/oidc/con_1/callback" || d["issuer"] != f.idp.Issuer ||
		strings.Join(d["scopes"].([]string), " ") != "openid email profile" || d["token_endpoint_auth_method"] != oidc.AuthBasic {
		t.Fatalf("describe %v", d)
	}
	b, _ := json.Marshal(d)
	if strings.Contains(string(b), secretValue) || strings.Contains(string(f.conn.Config), secretValue) {
		t.Fatal("secret in describe or config")
	}
	// An update without client_secret keeps the old one.
	if err := f.configure(map[string]any{"scopes": []string{"openid", "email"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(f.sec), secretValue) {
		t.Fatal("secret lost on update")
	}
	if _, err := f.login(); err != nil {
		t.Fatalf("login after update: %v", err)
	}
	for _, tc := range []struct {
		in    map[string]any
		field string
	}{
		{map[string]any{"issuer": ""}, "issuer"},
		{map[string]any{"issuer": "http://idp.example.com"}, "issuer"},
		{map[string]any{"issuer": f.idp.Issuer + "/nowhere"}, "issuer"},
		{map[string]any{"client_id": " "}, "client_id"},
		{map[string]any{"scopes": []string{"email"}}, "scopes"},
		{map[string]any{"allowed_algs": []string{"none"}}, "allowed_algs"},
		{map[string]any{"allowed_algs": []string{"XX999"}}, "allowed_algs"},
		{map[string]any{"token_endpoint_auth_method": "tls_client_auth"}, "token_endpoint_auth_method"},
		{map[string]any{"userinfo": "sometimes"}, "userinfo"},
		{map[string]any{"auth_params": map[string]string{"redirect_uri": "https://evil.example"}}, "auth_params"},
		{map[string]any{"preset": "myspace"}, "preset"},
		{map[string]any{"client_secrte": "typo"}, "client_secrte"},
		{map[string]any{"scopes": "openid"}, "scopes"},
		{map[string]any{"private_key": "not a key", "token_endpoint_auth_method": "private_key_jwt"}, "private_key"},
	} {
		g := &fixture{t: t, clk: f.clk, idp: f.idp, typ: f.typ, env: f.env, conn: &gatehouse.Connection{ID: "c", Config: f.conn.Config}, sec: f.sec}
		err := g.configure(tc.in)
		if gatehouse.ErrorField(err) != tc.field || gatehouse.ErrorCode(err) != gatehouse.EINVALID {
			t.Errorf("%v: got %v (field %q), want field %q", tc.in, err, gatehouse.ErrorField(err), tc.field)
		}
	}
	// A new connection with client_secret_basic needs a secret; HS256
	// needs one too.
	g := &fixture{t: t, clk: f.clk, idp: f.idp, typ: f.typ, env: f.env, conn: &gatehouse.Connection{ID: "n"}}
	if err := g.configure(map[string]any{"issuer": f.idp.Issuer, "client_id": "x"}); gatehouse.ErrorField(err) != "client_secret" {
		t.Errorf("missing secret: %v", err)
	}
	if err := g.configure(map[string]any{"issuer": f.idp.Issuer, "client_id": "x", "token_endpoint_auth_method": "private_key_jwt",
		"allowed_algs": []string{"HS256"}}); gatehouse.ErrorField(err) != "allowed_algs" {
		t.Errorf("HS256 without secret: %v", err)
	}
	// The provider must support the chosen client authentication.
	f.idp.Do(func(p *oidctest.Provider) {
		p.Metadata = func(m map[string]any) { m["token_endpoint_auth_methods_supported"] = []string{"client_secret_basic"} }
	})
	if err := g.configure(map[string]any{"issuer": f.idp.Issuer, "client_id": "x", "client_secret": "y",
		"token_endpoint_auth_method": "client_secret_post"}); gatehouse.ErrorField(err) != "token_endpoint_auth_method" {
		t.Errorf("unsupported method: %v", err)
	}
}

// Discovery and keys go through the outbound client: with the default
// policy a loopback issuer is refused when the connection is configured.
func TestOutboundPolicyApplies(t *testing.T) {
	clk := &clock{now: time.Now()}
	idp := oidctest.New(clk, "c", "s")
	defer idp.Close()
	typ := oidc.Type()
	env := connector.Env{PublicURL: "https://gatehouse.test", Clock: clk, HTTPClient: outbound.NewClient(outbound.Policy{})}
	_, _, err := typ.Configure(context.Background(), env, &gatehouse.Connection{ID: "x"}, nil,
		oidctest.Fields(map[string]any{"issuer": idp.Issuer, "client_id": "c", "client_secret": "s"}))
	var be *outbound.BlockedError
	if gatehouse.ErrorField(err) != "issuer" || !errors.As(err, &be) {
		t.Fatalf("got %v", err)
	}
}
