package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/saml"
	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/session"
)

// TestSAMLConnection runs the login handler with the real SAML connector:
// AuthnRequest by redirect, the signed response as a cross-site POST to
// the ACS bound by RelayState to the flow cookie, a replay refused by the
// store, and SP-initiated logout carrying the NameID to the IdP.
func TestSAMLConnection(t *testing.T) {
	saml.Register()
	e := newEnv(t, testdb.Engines[0])
	idp := samltest.New("https://idp.example.org")
	acme := e.tenant("acme", "acme.com")
	env := connector.Env{PublicURL: e.srv.URL, Clock: e.clock}
	c := &gatehouse.Connection{ID: gatehouse.NewID("con"), TenantID: acme.ID, Type: gatehouse.ConnSAML, Name: "Okta", Enabled: true, JIT: gatehouse.DefaultJITPolicy()}
	md, _ := json.Marshal(string(idp.Metadata()))
	cfg, sec, err := saml.Type().Configure(context.Background(), env, c, nil, map[string]json.RawMessage{"idp_metadata_xml": md})
	if err != nil {
		t.Fatal(err)
	}
	c.Config = cfg
	if c.Secrets, err = e.keyring.Seal(sec, []byte(c.ID)); err != nil {
		t.Fatal(err)
	}
	e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.CreateConnection(ctx, c) })
	desc := saml.Type().Describe(env, c)

	b := e.browser()
	r := b.get("/t/acme/login")
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), idp.SSOURL) {
		t.Fatalf("start: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	reqID, acs, relay, err := samltest.ParseRedirect(r.Header.Get("Location"))
	if err != nil || acs != desc["acs_url"] {
		t.Fatalf("AuthnRequest: %v acs %q want %q", err, acs, desc["acs_url"])
	}
	doc := samltest.Bytes(idp.Response(samltest.Options{
		Now: e.clock.Now(), ACS: acs, Audience: desc["sp_entity_id"].(string), InResponseTo: reqID,
		NameID: "00u1ana", SessionIndex: "_sess1", SignResponse: true, SignAssertion: true,
		Attributes: map[string][]string{"email": {"ana@acme.com"}, "givenName": {"Ana"}},
	}))
	form := samltest.Form(doc, relay)
	res := b.post(acs, form, "Sec-Fetch-Site", "cross-site", "Origin", "https://idp.example.org")
	if res.StatusCode != http.StatusFound || setCookie(res.Response, session.CookieName) == nil {
		t.Fatalf("ACS: %d %s", res.StatusCode, res.Body)
	}
	wantStatus(t, b.get("/t/acme/"), 200, "ana@acme.com")
	// The same POST again is refused, and creates no session.
	again := b.post(acs, form, "Sec-Fetch-Site", "cross-site")
	if again.StatusCode/100 != 4 || setCookie(again.Response, session.CookieName) != nil {
		t.Fatalf("replay: %d", again.StatusCode)
	}

	// Logout goes on to the IdP's SLO endpoint with a LogoutRequest.
	out := b.post("/t/acme/logout", nil)
	loc, _ := url.Parse(out.Header.Get("Location"))
	if out.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), idp.SLOURL) || loc.Query().Get("SAMLRequest") == "" || loc.Query().Get("RelayState") == "" {
		t.Fatalf("logout: %d %s", out.StatusCode, out.Header.Get("Location"))
	}
	wantStatus(t, b.get("/t/acme/"), 200, "You are not signed in")
}
