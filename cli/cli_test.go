package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/api"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/secret"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

const root = "cli-test-root-token-abcdefgh"

// server runs the real API on a fresh SQLite database.
func server(t *testing.T) string {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), testdb.URL(t, "sqlite"), sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, _ := secret.NewKeyring("k", bytes.Repeat([]byte{1}, 32))
	srv := httptest.NewServer(api.New(api.Config{Store: st, Keyring: kr, SuperuserTokenDigest: secret.Digest(root),
		PublicURL: "http://sso.test", Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type result struct {
	code           int
	stdout, stderr string
}

func run(args ...string) result {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestCLI(t *testing.T) {
	url := server(t)
	g := []string{"--url", url, "--token", root}
	ok := func(args ...string) string {
		t.Helper()
		r := run(append(append([]string{}, g...), args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s%s", args, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	out := ok("tenants", "create", "--slug", "acme", "--name", "Acme", "--domain", "acme.com", "--domain", "acme.org")
	if !strings.Contains(out, "acme.com,acme.org") {
		t.Fatalf("create tenant: %s", out)
	}
	if out := ok("tenants", "list"); !strings.Contains(out, "SLUG") || !strings.Contains(out, "acme") {
		t.Fatalf("list tenants: %s", out)
	}
	// Flags after the operands, tenant from the environment.
	t.Setenv("GATEHOUSE_TENANT", "acme")
	ok("users", "create", "--email", "ana@acme.com", "--display-name", "Ana")
	ok("users", "create", "--email", "bo@acme.com")
	var l struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(ok("users", "list", "--json", "--all")), &l); err != nil || len(l.Items) != 2 {
		t.Fatalf("users list --json: %v %v", l, err)
	}
	if out := ok("users", "get", "ana@acme.com"); !strings.Contains(out, "display_name:") || !strings.Contains(out, "Ana") {
		t.Fatalf("get by email: %s", out)
	}
	ok("groups", "create", "Engineering")
	ok("groups", "add-member", "Engineering", "ana@acme.com")
	if out := ok("groups", "members", "Engineering"); !strings.Contains(out, "ana@acme.com") || !strings.Contains(out, "admin") {
		t.Fatalf("members: %s", out)
	}
	if out := ok("users", "list", "--group", "Engineering"); !strings.Contains(out, "ana@acme.com") || strings.Contains(out, "bo@acme.com") {
		t.Fatalf("users in group: %s", out)
	}
	ok("groups", "remove-member", "Engineering", "ana@acme.com")
	ok("groups", "update", "Engineering", "--name", "Eng")
	if out := ok("users", "deactivate", "bo@acme.com"); !strings.Contains(out, "deactivated") {
		t.Fatalf("deactivate: %s", out)
	}
	ok("users", "delete", "bo@acme.com")
	// Tokens: created once, then usable.
	var tok map[string]any
	if err := json.Unmarshal([]byte(ok("tokens", "create", "--name", "ci", "--role", "tenant_viewer", "--json")), &tok); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GATEHOUSE_URL", url)
	t.Setenv("GATEHOUSE_TOKEN", tok["token"].(string))
	r := run("whoami")
	if r.code != 0 || !strings.Contains(r.stdout, "tenant_viewer") {
		t.Fatalf("whoami with env: %+v", r)
	}
	// A viewer cannot write: exit 1 with the API's message.
	r = run("groups", "create", "Nope")
	if r.code != 1 || !strings.Contains(r.stderr, "forbidden") {
		t.Fatalf("viewer write: %+v", r)
	}
	if out := ok("tokens", "list"); !strings.Contains(out, "ci") || strings.Contains(out, tok["token"].(string)) {
		t.Fatalf("tokens list: %s", out)
	}
	if out := ok("scim-tokens", "create", "--name", "okta"); !strings.Contains(out, "gh_scim_") || !strings.Contains(out, "http://sso.test/scim/v2") {
		t.Fatalf("scim token: %s", out)
	}
	ok("tokens", "delete", tok["id"].(string))
	if out := ok("audit", "--action", "user."); !strings.Contains(out, "user.created") || strings.Contains(out, "group.created") {
		t.Fatalf("audit: %s", out)
	}
	if out := ok("api", "GET", "/api/v1/tenants/acme"); !strings.Contains(out, `"slug": "acme"`) {
		t.Fatalf("api: %s", out)
	}
	var app map[string]any
	if err := json.Unmarshal([]byte(ok("api", "POST", "/api/v1/tenants/acme/apps", `{"name":"Wiki","redirect_uris":["https://wiki.example/cb"]}`)), &app); err != nil {
		t.Fatal(err)
	}
	if out := ok("apps", "list"); !strings.Contains(out, "Wiki") || !strings.Contains(out, "https://wiki.example/cb") {
		t.Fatalf("apps list: %s", out)
	}
	if out := ok("apps", "rotate-secret", app["id"].(string)); !strings.Contains(out, "client_secret: gh_cs_") {
		t.Fatalf("rotate-secret: %s", out)
	}
	ok("apps", "delete", app["id"].(string))
	if out := ok("connections", "list"); !strings.Contains(out, "TYPE") {
		t.Fatalf("connections list: %s", out)
	}
	// A conflict is reported with code and field.
	r = run(append(g, "users", "create", "--email", "ANA@acme.com")...)
	if r.code != 1 || !strings.Contains(r.stderr, "409 conflict, field email") {
		t.Fatalf("conflict: %+v", r)
	}
	ok("tenants", "delete", "acme")
}

func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"users"}, {"users", "fly"}, {"--token", "x", "users", "get"}, {"--nope", "tenants", "list"}} {
		if r := run(args...); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	t.Setenv("GATEHOUSE_TOKEN", "")
	if r := run("tenants", "list"); r.code != 2 || !strings.Contains(r.stderr, "no token") {
		t.Errorf("no token: %+v", r)
	}
	if r := run("--token", "x", "--url", "http://127.0.0.1:1", "tenants", "list"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach") {
		t.Errorf("unreachable: %+v", r)
	}
	if r := run("help"); r.code != 0 || !strings.Contains(r.stdout, "gatehouse") {
		t.Errorf("help: %+v", r)
	}
}
