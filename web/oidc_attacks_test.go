package web

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// TestOIDCForgedIDTokenTakesNoAccount: an account takeover through the
// real callback. Ana has signed in once; then the provider's token
// endpoint answers with ID tokens for her subject that must not verify
// (OIDC Core §3.1.3.7; RFC 8725 §2.1-2.2): each is refused with 403, the
// browser gets no session, and no user is created or changed. Both
// engines.
func TestOIDCForgedIDTokenTakesNoAccount(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			e, idp, srv, acme, _ := oidcSetup(t, engine)
			wantStatus(t, e.browser(srv).follow("/t/acme/login"), 200, "ana@acme.com", "Sign out")
			ana := e.user(acme, "ana@acme.com")

			for name, forge := range map[string]oidctest.Forge{
				"alg none":                           {Alg: "none"},
				"HS256 keyed with the public key":    {Alg: "HS256-pubkey"},
				"HS256 with the secret, not allowed": {Alg: "HS256-secret"},
				"tampered signature":                 {TamperSignature: true},
				"key not in the JWKS":                {UnknownKey: true},
				"nonce of another login":             {Claims: func(c map[string]any) { c["nonce"] = "stolen" }},
				"token for another client":           {Claims: func(c map[string]any) { c["aud"] = "client-2" }},
				"another issuer":                     {Claims: func(c map[string]any) { c["iss"] = "https://evil.example" }},
				"expired":                            {Claims: func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Hour).Unix() }},
			} {
				t.Run(name, func(t *testing.T) {
					idp.SetNext(forge)
					r := e.browser(srv).follow("/t/acme/login")
					wantStatus(t, r, 403, "could not be verified")
					if strings.Contains(r.Body, "Sign out") {
						t.Fatal("a session was opened")
					}
					if n := e.countUsers(acme); n != 1 {
						t.Fatalf("%d users", n)
					}
					if u := e.user(acme, "ana@acme.com"); u.ID != ana.ID || u.DisplayName != ana.DisplayName {
						t.Fatalf("user changed: %+v", u)
					}
				})
			}
		})
	}
}
