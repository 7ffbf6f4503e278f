package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	idRE   = regexp.MustCompile(`\b(ten|usr|grp|con|app|tok|sct|key|aud)_[0-9a-z]{26}\b`)
	timeRE = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"`)
	tokRE  = regexp.MustCompile(`"gh_(api|scim|cs)_[A-Za-z0-9_-]{43}"`)
)

// normalize replaces ids, times and secrets with placeholders and indents.
func normalize(t *testing.T, body []byte) []byte {
	t.Helper()
	b := idRE.ReplaceAll(body, []byte(`${1}_ID`))
	b = timeRE.ReplaceAll(b, []byte(`"TIME"`))
	b = tokRE.ReplaceAll(b, []byte(`"gh_${1}_SECRET"`))
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	got := normalize(t, body)
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run TestGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n%s", name, path, got)
	}
}

// TestGoldenWireFormats pins the JSON the API answers with: clients and
// acceptance checks depend on these shapes.
func TestGoldenWireFormats(t *testing.T) {
	e := newEnv(t, "sqlite")
	step := func(name, method, path string, body any, status int) {
		t.Helper()
		r := e.do(method, path, rootToken, body)
		if r.Status != status {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
		golden(t, name, r.Body)
	}
	step("tenant", "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme", "domains": []string{"acme.com"}, "support_contact": "it@acme.com"}, 201)
	step("user", "POST", "/api/v1/tenants/acme/users", map[string]any{"email": "ana@acme.com", "display_name": "Ana Alves", "given_name": "Ana", "family_name": "Alves"}, 201)
	step("group", "POST", "/api/v1/tenants/acme/groups", map[string]any{"name": "Staff"}, 201)
	step("connection", "POST", "/api/v1/tenants/acme/connections", map[string]any{"type": "apitest", "name": "IdP", "url": "https://idp.example", "secret": "x",
		"jit": map[string]any{"default_groups": []string{"Staff"}}}, 201)
	step("app", "POST", "/api/v1/tenants/acme/apps", map[string]any{"name": "Wiki", "redirect_uris": []string{"https://wiki.example/cb"}}, 201)
	step("api_token", "POST", "/api/v1/tenants/acme/api-tokens", map[string]any{"name": "ci", "role": "tenant_admin"}, 201)
	step("user_list", "GET", "/api/v1/tenants/acme/users", nil, 200)
	step("error_conflict", "POST", "/api/v1/tenants/acme/users", map[string]any{"email": "ANA@acme.com"}, 409)
	step("error_unknown_field", "POST", "/api/v1/tenants/acme/groups", `{"name":"x","colour":"red"}`, 400)
	step("audit", "GET", "/api/v1/tenants/acme/audit?action=user.", nil, 200)
}
