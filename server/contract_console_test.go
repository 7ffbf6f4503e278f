package server_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// Issue 9: "Users (search; filter by source jit/scim/admin, status, last
// login, group; ...)". Ana signs in just in time; Bo is created by an
// admin and never signs in.
func TestContractConsoleUsersFilterByLastLogin(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			gh, connID := acmeWithMock(t, engine)
			if code := gh.API(t, "POST", "/api/v1/tenants/acme/users", map[string]any{"email": "bo@acme.com"}, nil); code != 201 {
				t.Fatalf("create Bo: %d", code)
			}
			if code, _ := get(t, servertest.Browser(t), gh.URL+"/t/acme/login?connection="+connID+"&login_hint=ana@acme.com"); code != 200 {
				t.Fatalf("Ana's sign-in: %d", code)
			}
			console := consoleOperator(t, gh.URL)
			for _, tc := range []struct {
				filter   string
				want     int
				has, not string
			}{
				{"", 200, "ana@acme.com", ""},
				{"7d", 200, "ana@acme.com", "bo@acme.com"},
				{"-30d", 200, "bo@acme.com", "ana@acme.com"},
				{"forever", 400, "", ""},
			} {
				code, body := get(t, console.hc, gh.URL+"/console/t/acme/users?last_login="+tc.filter)
				if code != tc.want || !strings.Contains(body, tc.has) || (tc.not != "" && strings.Contains(body, tc.not)) {
					t.Errorf("last_login=%s: %d; want %d with %q and without %q", tc.filter, code, tc.want, tc.has, tc.not)
				}
			}
		})
	}
}
