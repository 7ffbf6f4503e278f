package web

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oidc"
	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

// TestOIDCConnection runs the login handler with the real OIDC connector
// against the in-process test provider: sealed client secret opened from
// the store, authorization code flow with PKCE, state bound to the flow
// cookie, and the provider's error answer.
func TestOIDCConnection(t *testing.T) {
	e, idp, srv, acme, c := oidcSetup(t, testdb.Engines[0])

	b := e.browser(srv)
	r := b.follow("/t/acme/login?login_hint=ana%40acme.com")
	wantStatus(t, r, 200, "ana@acme.com", "Sign out")
	if !strings.Contains(strings.Join(r.Via, " "), "/sso/oidc/"+c.ID+"/callback") {
		t.Errorf("callback not on the connection's own URL: %v", r.Via)
	}
	if u := e.user(acme, "ana@acme.com"); u.DisplayName != "Ana Lima" || u.Source != gatehouse.SourceJIT {
		t.Errorf("user %+v", u)
	}

	idp.Do(func(p *oidctest.Provider) { p.ErrorResponse = "access_denied" })
	r = e.browser(srv).follow("/t/acme/login")
	wantStatus(t, r, 403, "access_denied", "it@acme.example", "Reference")
	if strings.Contains(r.Body, "<script>") || strings.Contains(r.Body, "the user said no") {
		t.Error("the IdP's error_description reached the page")
	}
}

const oidcTestSecret = "s3cret-for-tests-0123456789abcdefghij"

// oidcSetup starts a server on engine, the test provider (whose user is
// Ana) and tenant acme with an OIDC connection to it.
func oidcSetup(t *testing.T, engine string) (*env, *oidctest.Provider, *httptest.Server, *gatehouse.Tenant, *gatehouse.Connection) {
	t.Helper()
	oidc.Register()
	e := newEnv(t, engine)
	idp := oidctest.New(e.clock, "client-1", oidcTestSecret)
	t.Cleanup(idp.Close)
	idp.Claims = map[string]any{"sub": "okta-ana", "email": "ana@acme.com", "email_verified": true, "name": "Ana Lima"}

	env := connector.Env{Clock: e.clock,
		HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 5 * time.Second})}
	srv, _ := e.replica(func(c *Config) { c.ConnectorEnv, c.Dev = env, false })
	env.PublicURL = srv.URL

	acme := e.tenant("acme", "acme.com")
	c := &gatehouse.Connection{ID: gatehouse.NewID("con"), TenantID: acme.ID, Type: gatehouse.ConnOIDC, Name: "Okta", Enabled: true, JIT: gatehouse.DefaultJITPolicy()}
	cfg, sec, err := oidc.Type().Configure(context.Background(), env, c, nil, oidctest.Fields(map[string]any{
		"issuer": idp.Issuer, "client_id": "client-1", "client_secret": oidcTestSecret}))
	if err != nil {
		t.Fatal(err)
	}
	c.Config = cfg
	if c.Secrets, err = e.keyring.Seal(sec, []byte(c.ID)); err != nil {
		t.Fatal(err)
	}
	e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.CreateConnection(ctx, c) })
	return e, idp, srv, acme, c
}
