package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// scimCall sends one SCIM request with token and decodes the answer.
func scimCall(t *testing.T, gh *servertest.Instance, token, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, gh.URL+"/scim/v2"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// TestContractSCIMUserLinksThroughItsTokensConnection: issue 7, "a
// SCIM-created user who later signs in through SSO is linked, not
// duplicated: through the token's connection". The tenant also has a SCIM
// token naming no connection and one naming another connection (an
// acceptance check creates tokens for several purposes in one tenant): the
// user pushed by the token of the login's connection is still linked, the
// user pushed by the connection-less token falls to the email policy
// (refused: link_existing_by_email is off), and active:"False" from the
// pushing IdP ends the linked user's session and refuses the next login.
func TestContractSCIMUserLinksThroughItsTokensConnection(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true})
			if code := gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}, "support_contact": "it@acme.com"}, nil); code != 201 {
				t.Fatalf("tenant: %d", code)
			}
			var conn, other struct{ ID string }
			if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "mock", "name": "Okta",
				"users": []map[string]any{{"subject": "00ufrank", "email": "frank@acme.com"}, {"subject": "00ugina", "email": "gina@acme.com"}}}, &conn); code != 201 {
				t.Fatalf("connection: %d", code)
			}
			if code := gh.API(t, "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "mock", "name": "Other", "enabled": false}, &other); code != 201 {
				t.Fatalf("other connection: %d", code)
			}
			token := func(body map[string]any) string {
				var out struct{ ID, Token string }
				if code := gh.API(t, "POST", "/api/v1/tenants/acme/scim-tokens", body, &out); code != 201 || out.ID == "" || out.Token == "" {
					t.Fatalf("scim token %v: %d %+v", body, code, out)
				}
				return out.Token
			}
			plain := token(map[string]any{"name": "plain"})
			okta := token(map[string]any{"name": "okta", "connection_id": conn.ID})
			token(map[string]any{"name": "other", "connection_id": other.ID})

			var frank struct{ ID string }
			if code := scimCall(t, gh, okta, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"frank@acme.com","externalId":"00ufrank","emails":[{"primary":true,"value":"frank@acme.com","type":"work"}],"active":true}`, &frank); code != 201 {
				t.Fatalf("SCIM POST frank: %d", code)
			}
			if code := scimCall(t, gh, plain, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"gina@acme.com","active":true}`, nil); code != 201 {
				t.Fatalf("SCIM POST gina: %d", code)
			}
			login := func(b *http.Client, email string) (int, string) {
				return get(t, b, gh.URL+"/t/acme/login?connection="+conn.ID+"&login_hint="+url.QueryEscape(email))
			}

			browser := servertest.Browser(t)
			if code, body := login(browser, "frank@acme.com"); code != 200 || !strings.Contains(body, "frank@acme.com") {
				t.Fatalf("frank's login: %d %s", code, body)
			}
			var users struct {
				Items []struct{ ID, Source string } `json:"items"`
			}
			if gh.API(t, "GET", "/api/v1/tenants/acme/users?email=frank@acme.com", nil, &users); len(users.Items) != 1 || users.Items[0].ID != frank.ID || users.Items[0].Source != "scim" {
				t.Fatalf("frank after login: %+v (want the SCIM user %s, linked)", users, frank.ID)
			}
			var audit struct {
				Items []struct{ Action string } `json:"items"`
			}
			if gh.API(t, "GET", "/api/v1/tenants/acme/audit?action=user.linked", nil, &audit); len(audit.Items) != 1 {
				t.Fatalf("user.linked events: %+v", audit)
			}

			if code, _ := login(servertest.Browser(t), "gina@acme.com"); code != 403 {
				t.Fatalf("gina, pushed by a token naming no connection, without email linking: %d, want 403", code)
			}
			if gh.API(t, "GET", "/api/v1/tenants/acme/users?email=gina@acme.com", nil, &users); len(users.Items) != 1 {
				t.Fatalf("gina duplicated: %+v", users)
			}

			// Entra ID's deactivation shape.
			if code := scimCall(t, gh, okta, "PATCH", "/Users/"+frank.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`, nil); code != 200 {
				t.Fatalf("deactivate: %d", code)
			}
			if code, body := get(t, browser, gh.URL+"/t/acme/"); code != 200 || strings.Contains(body, "frank@acme.com") {
				t.Fatalf("frank's session survived active:false: %d %s", code, body)
			}
			if code, _ := login(browser, "frank@acme.com"); code != 403 {
				t.Fatalf("deactivated frank's login: %d, want 403", code)
			}
		})
	}
}
