package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oidc"
	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

// These tests drive the OIDC connector (Begin, the provider's own pages by
// plain HTTP, Finish) against the real oidc-provider, without the rest of
// Gatehouse: they pin the protocol interoperability on its own.

const connPublicURL = "https://gatehouse.test"

var opAccounts = []opAccount{
	{Sub: "ada", Email: "ada@example.com", EmailVerified: boolp(true), Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Groups: []string{"engineering", "admins"}},
	{Sub: "bob", Email: "bob@example.com", EmailVerified: boolp(false), Name: "Bob"},
	{Sub: "eve", Email: "eve@example.com", EmailVerified: boolp(true), Deny: true},
}

type connFixture struct {
	t   *testing.T
	op  *realOP
	env connector.Env
	c   connector.Connector
}

// openConn configures (live discovery) and opens a connection to op; in
// overrides fields, a nil value removes one.
func openConn(t *testing.T, op *realOP, in map[string]any) *connFixture {
	env := connector.Env{PublicURL: connPublicURL, Clock: gatehouse.SystemClock{},
		HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 10 * time.Second})}
	fields := map[string]any{"issuer": op.Issuer, "client_id": op.ClientID, "client_secret": op.ClientSecret,
		"scopes": []string{"openid", "email", "profile", "groups"}}
	for k, v := range in {
		fields[k] = v
		if v == nil {
			delete(fields, k)
		}
	}
	conn := &gatehouse.Connection{ID: "con_e2e", TenantID: "ten_e2e", Type: "oidc"}
	c, _, err := oidctest.Configure(oidc.Type(), env, conn, nil, fields)
	if err != nil {
		t.Fatalf("configure against the real provider: %v", err)
	}
	return &connFixture{t: t, op: op, env: env, c: c}
}

// login follows the provider's redirects with a cookie jar until it sends
// the browser back to Gatehouse's callback, then calls Finish there.
func (f *connFixture) login(hint string) (*gatehouse.Identity, error) {
	f.t.Helper()
	flow := &connector.Flow{ID: "flw", TenantID: "ten_e2e", ConnectionID: "con_e2e", LoginHint: hint}
	act, err := f.c.Begin(context.Background(), flow)
	if err != nil {
		f.t.Fatalf("begin: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	var callback string
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), connPublicURL+"/") {
			callback = r.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(act.RedirectURL)
	if err != nil {
		f.t.Fatalf("browser: %v", err)
	}
	resp.Body.Close()
	if callback == "" {
		f.t.Fatalf("the provider did not send the browser back (last status %s at %s)", resp.Status, resp.Request.URL)
	}
	r := httptest.NewRequest("GET", callback, nil)
	return f.c.Finish(context.Background(), flow, r)
}

// TestRealOPConnector runs every case against two provider processes (node
// takes a second to start): one that puts claims in the ID token and knows
// a private_key_jwt client, one that gives them only through userinfo.
func TestRealOPConnector(t *testing.T) {
	// Our own private_key_jwt key, registered at the provider as the
	// client's JWKS; the provider checks the assertion's signature, iss,
	// sub, aud and jti.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	jwk := jose.JSONWebKey{Key: key.Public(), Use: "sig", Algorithm: "RS256"}
	tp, _ := jwk.Thumbprint(crypto.SHA256)
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})

	op := startOP(t, opOptions{RedirectPrefix: connPublicURL + "/sso/oidc/", ClaimsIn: "id_token", Accounts: opAccounts, ClientJWKS: jwks})
	uop := startOP(t, opOptions{RedirectPrefix: connPublicURL + "/sso/oidc/", ClaimsIn: "userinfo", Accounts: opAccounts})

	t.Run("claims in the ID token", func(t *testing.T) {
		f := openConn(t, op, nil)
		id, err := f.login("ada@example.com")
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if id.Issuer != op.Issuer || id.Subject != "ada" || id.Email != "ada@example.com" || id.EmailVerified == nil || !*id.EmailVerified ||
			id.DisplayName != "Ada Lovelace" || id.GivenName != "Ada" || id.FamilyName != "Lovelace" ||
			strings.Join(id.Groups, ",") != "engineering,admins" {
			t.Fatalf("identity %+v", id)
		}
		// The provider sends the RFC 9207 iss parameter and advertises
		// it, so the connector required and checked it on the way.
		if id.Raw["nonce"] == nil {
			t.Fatalf("raw claims %v", id.Raw)
		}
	})

	t.Run("claims only through userinfo", func(t *testing.T) {
		id, err := openConn(t, uop, nil).login("ada@example.com")
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if id.Subject != "ada" || id.Email != "ada@example.com" || id.DisplayName != "Ada Lovelace" || len(id.Groups) != 2 {
			t.Fatalf("identity %+v", id)
		}
		// With userinfo "never", the ID token alone has no email.
		id, err = openConn(t, uop, map[string]any{"userinfo": "never"}).login("ada@example.com")
		if err != nil || id.Email != "" || id.Subject != "ada" {
			t.Fatalf("never: %+v %v", id, err)
		}
	})

	t.Run("unverified email", func(t *testing.T) {
		id, err := openConn(t, op, nil).login("bob@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if id.EmailVerified == nil || *id.EmailVerified {
			t.Fatalf("email_verified should be false: %+v", id)
		}
	})

	t.Run("access_denied", func(t *testing.T) {
		_, err := openConn(t, op, nil).login("eve@example.com")
		if gatehouse.ErrorCode(err) != gatehouse.EFORBIDDEN || !strings.Contains(gatehouse.ErrorMessage(err), "access_denied") {
			t.Fatalf("access_denied: %v", err)
		}
	})

	t.Run("wrong client secret", func(t *testing.T) {
		_, err := openConn(t, op, map[string]any{"client_secret": "wrong-secret-0123456789abcdefghijklmnop"}).login("ada@example.com")
		if gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE || !strings.Contains(gatehouse.ErrorMessage(err), "invalid_client") {
			t.Fatalf("wrong secret: %v", err)
		}
	})

	t.Run("client_secret_post", func(t *testing.T) {
		if _, err := openConn(t, op, map[string]any{"token_endpoint_auth_method": "client_secret_post"}).login("ada@example.com"); err != nil {
			t.Fatalf("client_secret_post: %v", err)
		}
	})

	t.Run("private_key_jwt", func(t *testing.T) {
		g := openConn(t, op, map[string]any{"client_id": op.ClientID + "-pkjwt", "client_secret": nil,
			"token_endpoint_auth_method": "private_key_jwt", "private_key": pemKey})
		id, err := g.login("ada@example.com")
		if err != nil || id.Subject != "ada" {
			t.Fatalf("private_key_jwt: %+v %v", id, err)
		}
		// A key the provider does not know: the assertion is refused.
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		der, _ := x509.MarshalPKCS8PrivateKey(other)
		h := openConn(t, op, map[string]any{"client_id": op.ClientID + "-pkjwt", "client_secret": nil,
			"token_endpoint_auth_method": "private_key_jwt", "private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
		if _, err := h.login("ada@example.com"); gatehouse.ErrorCode(err) != gatehouse.EUNAVAILABLE {
			t.Fatalf("private_key_jwt with an unregistered key: %v", err)
		}
	})
}
