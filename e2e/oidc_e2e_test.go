package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// The whole Gatehouse (server wiring, admin API, login flow, provisioning,
// store) against the real oidc-provider, driven like a browser: a cookie
// jar following redirects from /t/{tenant}/login to the provider and back
// to the connection's callback.

type e2eUser struct {
	ID          string   `json:"id"`
	Email       string   `json:"email"`
	DisplayName string   `json:"display_name"`
	GivenName   string   `json:"given_name"`
	FamilyName  string   `json:"family_name"`
	Source      string   `json:"source"`
	Groups      []string `json:"groups"`
}

type oidcE2E struct {
	t    *testing.T
	inst *servertest.Instance
}

func (e *oidcE2E) mustAPI(method, path string, body any, out any, want int) {
	e.t.Helper()
	if got := e.inst.API(e.t, method, path, body, out); got != want {
		e.t.Fatalf("%s %s: status %d, want %d", method, path, got, want)
	}
}

// connection creates an OIDC connection to op and returns its id.
func (e *oidcE2E) connection(name string, op *realOP, secret string, jit map[string]any) string {
	e.t.Helper()
	var out map[string]any
	e.mustAPI("POST", "/api/v1/tenants/acme/connections", map[string]any{
		"type": "oidc", "name": name, "enabled": true,
		"issuer": op.Issuer, "client_id": op.ClientID, "client_secret": secret,
		"scopes": []string{"openid", "email", "profile", "groups"},
		"jit":    jit,
	}, &out, http.StatusCreated)
	id, _ := out["id"].(string)
	if want := e.inst.URL + "/sso/oidc/" + id + "/callback"; out["redirect_uri"] != want {
		e.t.Fatalf("redirect_uri %v, want %s", out["redirect_uri"], want)
	}
	for k, v := range out {
		if s, ok := v.(string); ok && s == secret {
			e.t.Fatalf("the client secret is returned in %q", k)
		}
	}
	return id
}

// login signs in through connection conn as the provider account hint, in
// a fresh browser, and returns the final page.
func (e *oidcE2E) login(conn, hint string) (int, string) {
	e.t.Helper()
	b := servertest.Browser(e.t)
	resp, err := b.Get(e.inst.URL + "/t/acme/login?" + url.Values{"connection": {conn}, "login_hint": {hint}}.Encode())
	if err != nil {
		e.t.Fatalf("login %s: %v", hint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(resp.Request.URL.String(), e.inst.URL) {
		e.t.Fatalf("login %s ended at %s (%s): %s", hint, resp.Request.URL, resp.Status, body)
	}
	return resp.StatusCode, string(body)
}

// mustLogin is login that must end on a success page.
func (e *oidcE2E) mustLogin(conn, hint string) {
	e.t.Helper()
	if status, body := e.login(conn, hint); status != http.StatusOK {
		e.t.Fatalf("login %s: status %d: %s", hint, status, body)
	}
}

func (e *oidcE2E) users(email string) []e2eUser {
	e.t.Helper()
	var out struct {
		Items []e2eUser `json:"items"`
	}
	e.mustAPI("GET", "/api/v1/tenants/acme/users?"+url.Values{"email": {email}}.Encode(), nil, &out, http.StatusOK)
	return out.Items
}

func (e *oidcE2E) user(id string) e2eUser {
	e.t.Helper()
	var u e2eUser
	e.mustAPI("GET", "/api/v1/tenants/acme/users/"+id, nil, &u, http.StatusOK)
	return u
}

func TestOIDCEndToEnd(t *testing.T) {
	accounts := []opAccount{
		{Sub: "op-min", Email: "min@example.com", EmailVerified: boolp(true)},
		{Sub: "op-ada", Email: "ada@example.com", EmailVerified: boolp(true), Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Groups: []string{"engineering", "unmapped"}},
		{Sub: "op-uma", Email: "uma@example.com", EmailVerified: boolp(true), Name: "Uma Userinfo", Groups: []string{"engineering"}},
		{Sub: "op-bob", Email: "bob@example.com", EmailVerified: boolp(false), Name: "Bob Unverified"},
		{Sub: "op-carol", Email: "carol@example.com", EmailVerified: boolp(true)},
		{Sub: "op-eve", Email: "eve@example.com", EmailVerified: boolp(true), Deny: true},
	}
	// One provider of each kind serves both engines' instances (each on
	// its own loopback port, hence the prefix).
	const prefix = "http://127.0.0.1:"
	op := startOP(t, opOptions{RedirectPrefix: prefix, ClaimsIn: "id_token", Accounts: accounts})
	uop := startOP(t, opOptions{RedirectPrefix: prefix, ClaimsIn: "userinfo", Accounts: accounts})
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) { testOIDCEndToEnd(t, engine, op, uop) })
	}
}

func testOIDCEndToEnd(t *testing.T, engine string, op, uop *realOP) {
	inst := servertest.Start(t, servertest.Options{Engine: engine})
	e := &oidcE2E{t: t, inst: inst}
	e.mustAPI("POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"example.com"}}, nil, http.StatusCreated)
	e.mustAPI("POST", "/api/v1/tenants/acme/groups", map[string]any{"name": "Engineering"}, nil, http.StatusCreated)
	jit := map[string]any{"enabled": true, "link_existing_by_email": true,
		"group_sync": map[string]any{"enabled": true, "mapping": map[string]string{"engineering": "Engineering"}}}
	conn := e.connection("Real OP", op, op.ClientSecret, jit)

	t.Run("first login creates the user from email alone", func(t *testing.T) {
		e.t = t
		e.mustLogin(conn, "min@example.com")
		us := e.users("min@example.com")
		if len(us) != 1 || us[0].Source != "jit" || us[0].Email != "min@example.com" {
			t.Fatalf("users %+v", us)
		}
	})

	var adaID string
	t.Run("name and group claims fill the profile", func(t *testing.T) {
		e.t = t
		e.mustLogin(conn, "ada@example.com")
		us := e.users("ada@example.com")
		if len(us) != 1 {
			t.Fatalf("users %+v", us)
		}
		adaID = us[0].ID
		u := e.user(adaID)
		if u.DisplayName != "Ada Lovelace" || u.GivenName != "Ada" || u.FamilyName != "Lovelace" || strings.Join(u.Groups, ",") != "Engineering" {
			t.Fatalf("profile %+v", u)
		}
	})

	t.Run("a second login reuses the user", func(t *testing.T) {
		e.t = t
		e.mustLogin(conn, "ada@example.com")
		us := e.users("ada@example.com")
		if len(us) != 1 || us[0].ID != adaID {
			t.Fatalf("users %+v, want the one user %s", us, adaID)
		}
	})

	t.Run("claims only through userinfo", func(t *testing.T) {
		e.t = t
		uconn := e.connection("Userinfo OP", uop, uop.ClientSecret, jit)
		e.mustLogin(uconn, "uma@example.com")
		us := e.users("uma@example.com")
		if len(us) != 1 {
			t.Fatalf("users %+v", us)
		}
		if u := e.user(us[0].ID); u.DisplayName != "Uma Userinfo" || strings.Join(u.Groups, ",") != "Engineering" {
			t.Fatalf("profile %+v", u)
		}
	})

	t.Run("an unverified email cannot link to an existing account", func(t *testing.T) {
		e.t = t
		var bob e2eUser
		e.mustAPI("POST", "/api/v1/tenants/acme/users", map[string]any{"email": "bob@example.com", "display_name": "Bob (admin-made)"}, &bob, http.StatusCreated)
		status, body := e.login(conn, "bob@example.com")
		if status != http.StatusForbidden || !strings.Contains(body, "email address") || !strings.Contains(body, "Reference") {
			t.Fatalf("status %d: %s", status, body)
		}
		us := e.users("bob@example.com")
		if len(us) != 1 || us[0].ID != bob.ID || e.user(bob.ID).DisplayName != "Bob (admin-made)" {
			t.Fatalf("users %+v", us)
		}
		// The refusal was audited with its reason.
		var audit map[string]any
		e.mustAPI("GET", "/api/v1/tenants/acme/audit?action=login.refused", nil, &audit, http.StatusOK)
		if b, _ := jsonString(audit); !strings.Contains(b, "email_unverified") {
			t.Fatalf("no login.refused email_unverified audit event: %s", b)
		}
	})

	t.Run("a wrong client secret gives a clear page and creates nothing", func(t *testing.T) {
		e.t = t
		bad := e.connection("Wrong secret", op, "not-the-secret-0123456789abcdefghijklmnop", jit)
		status, body := e.login(bad, "carol@example.com")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "invalid_client") || !strings.Contains(body, "Reference") {
			t.Fatalf("status %d: %s", status, body)
		}
		if us := e.users("carol@example.com"); len(us) != 0 {
			t.Fatalf("created %+v", us)
		}
	})

	t.Run("the provider answering access_denied gives a clear page", func(t *testing.T) {
		e.t = t
		status, body := e.login(conn, "eve@example.com")
		if status != http.StatusForbidden || !strings.Contains(body, "access_denied") || !strings.Contains(body, "Reference") {
			t.Fatalf("status %d: %s", status, body)
		}
		if us := e.users("eve@example.com"); len(us) != 0 {
			t.Fatalf("created %+v", us)
		}
	})
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
