package server_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
)

// Issue 8: "prompt=login forces re-authentication; max_age is honoured."
// Both must hold right after a sign-in too (a session a second old is not
// a fresh authentication for a request made after it), and young sessions
// must still be reused.
func TestContractPromptLoginAndMaxAgeRightAfterSignIn(t *testing.T) {
	ctx := context.Background()
	gh, _ := acmeWithMock(t, "sqlite")
	a := wikiApp(t, gh)
	browser := servertest.Browser(t)
	issuer, redirect, scopes := gh.URL+"/t/acme", "https://wiki.acme.com/callback", []string{"openid"}
	if _, _, _, visited := codeFlow(t, ctx, issuer, browser, a, redirect, scopes); !containsPrefix(visited, "/sso/mock/") {
		t.Fatalf("first sign-in did not go to the IdP: %v", visited)
	}
	for _, tc := range []struct {
		name  string
		param [2]string
		idp   bool
	}{
		{"no parameter reuses the session", [2]string{}, false},
		{"prompt=login", [2]string{"prompt", "login"}, true},
		{"max_age=0", [2]string{"max_age", "0"}, true},
		{"max_age=3600 reuses the session", [2]string{"max_age", "3600"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []oauth2.AuthCodeOption
			if tc.param[0] != "" {
				extra = append(extra, oauth2.SetAuthURLParam(tc.param[0], tc.param[1]))
			}
			_, _, _, visited := codeFlow(t, ctx, issuer, browser, a, redirect, scopes, extra...)
			if got := containsPrefix(visited, "/sso/mock/"); got != tc.idp {
				t.Fatalf("went to the IdP: %v, want %v; visited %v", got, tc.idp, visited)
			}
		})
	}
}

// recorder is a stand-in IdP that only records the query of each request
// the browser brings to its login endpoints.
type recorder struct {
	mu      sync.Mutex
	queries []url.Values
}

func (r *recorder) last(t *testing.T) url.Values {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queries) == 0 {
		t.Fatal("the browser never reached the IdP")
	}
	return r.queries[len(r.queries)-1]
}

// A re-authentication Gatehouse asks for must reach the upstream IdP,
// else the IdP answers from its own session and nobody authenticated:
// OIDC prompt=login, SAML ForceAuthn="true"; and only then.
func TestContractReauthenticationReachesTheIdP(t *testing.T) {
	rec := &recorder{}
	var idp *httptest.Server
	idp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer": idp.URL, "authorization_endpoint": idp.URL + "/auth", "token_endpoint": idp.URL + "/token",
				"jwks_uri": idp.URL + "/jwks", "response_types_supported": []string{"code"},
				"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
			})
		case "/jwks":
			_, _ = io.WriteString(w, `{"keys":[]}`)
		case "/auth", "/saml/sso":
			rec.mu.Lock()
			rec.queries = append(rec.queries, r.URL.Query())
			rec.mu.Unlock()
			_, _ = io.WriteString(w, "IdP login page")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(idp.Close)

	gh := servertest.Start(t, servertest.Options{Engine: "sqlite", Dev: true})
	gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}}, nil)
	var oidcConn, samlConn struct {
		ID string `json:"id"`
	}
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
		"type": "oidc", "name": "IdP", "issuer": idp.URL, "client_id": "gh", "client_secret": "s3cret", "enabled": true,
	}, &oidcConn); code != 201 {
		t.Fatalf("oidc connection: %d", code)
	}
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{
		"type": "saml", "name": "SAML IdP", "idp_sso_url": idp.URL + "/saml/sso", "idp_entity_id": idp.URL + "/saml",
		"idp_certificate": selfSignedPEM(t), "enabled": true,
	}, &samlConn); code != 201 {
		t.Fatalf("saml connection: %d", code)
	}

	samlForceAuthn := func(q url.Values) bool {
		raw, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
		if err != nil {
			t.Fatalf("SAMLRequest: %v", err)
		}
		xml, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("inflate SAMLRequest: %v", err)
		}
		return strings.Contains(string(xml), `ForceAuthn="true"`)
	}
	for _, tc := range []struct {
		name   string
		conn   string
		forced func(url.Values) bool
	}{
		{"oidc", oidcConn.ID, func(q url.Values) bool { return q.Get("prompt") == "login" }},
		{"saml", samlConn.ID, samlForceAuthn},
	} {
		var a app
		if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{
			"name": tc.name + " app", "redirect_uris": []string{"https://app.acme.com/callback"}, "allowed_connections": []string{tc.conn},
		}, &a); code != 201 {
			t.Fatalf("app: %d", code)
		}
		conf := oauth2.Config{ClientID: a.ClientID, RedirectURL: "https://app.acme.com/callback", Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: gh.URL + "/t/acme/authorize"}}
		for _, p := range []struct {
			param [2]string
			force bool
		}{
			{[2]string{}, false},
			{[2]string{"prompt", "login"}, true},
			{[2]string{"max_age", "0"}, true},
		} {
			t.Run(tc.name+" "+p.param[0], func(t *testing.T) {
				opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier())}
				if p.param[0] != "" {
					opts = append(opts, oauth2.SetAuthURLParam(p.param[0], p.param[1]))
				}
				resp, err := servertest.Browser(t).Get(conf.AuthCodeURL("st", opts...))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := tc.forced(rec.last(t)); got != p.force {
					t.Fatalf("IdP asked to re-authenticate: %v, want %v (%v)", got, p.force, rec.last(t))
				}
			})
		}
	}

	// With both connections eligible the login shows a chooser: each
	// choice, and its email form, keep the re-authentication.
	var open app
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{
		"name": "any", "redirect_uris": []string{"https://app.acme.com/callback"},
	}, &open); code != 201 {
		t.Fatalf("app: %d", code)
	}
	conf := oauth2.Config{ClientID: open.ClientID, RedirectURL: "https://app.acme.com/callback", Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: gh.URL + "/t/acme/authorize"}}
	code, body := get(t, servertest.Browser(t), conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "login")))
	if code != 200 || strings.Count(body, "prompt=login") != 2 || !strings.Contains(body, `name="prompt" value="login"`) {
		t.Fatalf("chooser (%d) loses prompt=login: %.3000s", code, body)
	}
}

func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
