package scim_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/scim"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestErrors(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		id := e.createUser("err@acme.com", nil)
		p := "/scim/v2/Users/" + id
		for _, tc := range []struct {
			name, method, path string
			body               any
			status             int
			scimType           string
		}{
			{"not JSON", "POST", "/scim/v2/Users", `{"userName":`, 400, "invalidSyntax"},
			{"JSON array", "POST", "/scim/v2/Users", `[]`, 400, "invalidSyntax"},
			{"trailing data", "POST", "/scim/v2/Users", `{"userName":"q"} {}`, 400, "invalidSyntax"},
			{"wrong type", "POST", "/scim/v2/Users", map[string]any{"userName": "t", "active": "maybe"}, 400, "invalidValue"},
			{"no operations", "PATCH", p, map[string]any{"schemas": []string{patchOp}}, 400, "invalidSyntax"},
			{"unknown op", "PATCH", p, ops(map[string]any{"op": "move", "path": "title"}), 400, "invalidSyntax"},
			{"bad path", "PATCH", p, ops(map[string]any{"op": "replace", "path": "emails[type eq]", "value": "x"}), 400, "invalidPath"},
			{"unknown attribute", "PATCH", p, ops(map[string]any{"op": "replace", "path": "shoeSize", "value": "x"}), 400, "invalidPath"},
			{"unknown sub-attribute", "PATCH", p, ops(map[string]any{"op": "replace", "path": "name.nick", "value": "x"}), 400, "invalidPath"},
			{"filter on single-valued", "PATCH", p, ops(map[string]any{"op": "replace", "path": `title[value eq "x"]`, "value": "x"}), 400, "invalidPath"},
			{"read-only id", "PATCH", p, ops(map[string]any{"op": "replace", "path": "id", "value": "usr_x"}), 400, "mutability"},
			{"read-only meta", "PATCH", p, ops(map[string]any{"op": "replace", "path": "meta.created", "value": "x"}), 400, "mutability"},
			{"remove without path", "PATCH", p, ops(map[string]any{"op": "remove"}), 400, "noTarget"},
			{"replace unmatched element", "PATCH", p, ops(map[string]any{"op": "replace", "path": `emails[type eq "home"]`, "value": map[string]any{"value": "h@x.io"}}), 400, "noTarget"},
			{"remove userName", "PATCH", p, ops(map[string]any{"op": "remove", "path": "userName"}), 400, "invalidValue"},
			{"no-path value not object", "PATCH", p, ops(map[string]any{"op": "add", "value": "x"}), 400, "invalidValue"},
			{"too many patch ops", "PATCH", p, ops(manyOps(1001)...), 400, "tooMany"},
			{"unknown endpoint", "GET", "/scim/v2/Widgets", nil, 404, ""},
			{"outside prefix", "GET", "/scim/v20/Users", nil, 404, ""},
			{"method", "DELETE", "/scim/v2/Users", nil, 405, ""},
			{"me", "GET", "/scim/v2/Me", nil, 501, ""},
			{"discovery write", "POST", "/scim/v2/Schemas", map[string]any{}, 405, ""},
			{"body too large", "POST", "/scim/v2/Users", `{"userName":"` + strings.Repeat("a", 1<<20) + `"}`, 413, ""},
			{"startIndex", "GET", "/scim/v2/Users?startIndex=first", nil, 400, "invalidValue"},
			{"sortOrder", "GET", "/scim/v2/Users?sortOrder=up", nil, 400, "invalidValue"},
			{"attributes", "GET", "/scim/v2/Users?attributes=a..b", nil, 400, "invalidValue"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e.do(tc.method, tc.path, tc.body).wantError(t, tc.status, tc.scimType)
			})
		}
		// Nothing above changed the user.
		if r := e.do("GET", p, nil).want(t, 200); r.str("meta.version") != `W/"1"` {
			t.Errorf("failed requests changed the user: %s", r.raw)
		}
	})
}

func manyOps(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"op": "replace", "path": "title", "value": "t"}
	}
	return out
}

// TestWireFormats compares discovery documents and a rendered user with
// golden files (go test ./scim -run WireFormats -update rewrites them).
func TestWireFormats(t *testing.T) {
	e := newEnv(t, "sqlite")
	id := e.createUser("golden@acme.com", map[string]any{
		"schemas":    []string{scim.SchemaUser, scim.SchemaEnterprise},
		"externalId": "ext-1", "displayName": "Golden User",
		"name":                map[string]any{"givenName": "Golden", "familyName": "User"},
		"emails":              []any{map[string]any{"value": "golden@acme.com", "type": "work", "primary": true}},
		scim.SchemaEnterprise: map[string]any{"employeeNumber": "1", "manager": map[string]any{"value": "usr_boss"}},
	})
	gid := e.do("POST", "/scim/v2/Groups", map[string]any{"displayName": "Golden", "members": []any{map[string]any{"value": id}}}).want(t, 201).str("id")
	for name, path := range map[string]string{
		"service_provider_config.json": "/scim/v2/ServiceProviderConfig",
		"resource_types.json":          "/scim/v2/ResourceTypes",
		"schemas.json":                 "/scim/v2/Schemas",
		"schema_enterprise.json":       "/scim/v2/Schemas/" + scim.SchemaEnterprise,
		"resource_type_user.json":      "/scim/v2/ResourceTypes/User",
		"user.json":                    "/scim/v2/Users/" + id,
		"group.json":                   "/scim/v2/Groups/" + gid,
		"error_uniqueness.json":        "",
	} {
		t.Run(name, func(t *testing.T) {
			var r *resp
			if path == "" {
				r = e.do("POST", "/scim/v2/Users", map[string]any{"userName": "golden@acme.com"}).want(t, 409)
			} else {
				r = e.do("GET", path, nil).want(t, 200)
			}
			// The body is compact JSON and a newline, as encoding/json's
			// Encoder wrote it; with the golden comparison below that
			// pins every byte (scim writes it with appendJSON).
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(r.raw)); err != nil || compact.String()+"\n" != r.raw {
				t.Errorf("body is not compact JSON and a newline (%v): %q", err, r.raw)
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, bytes.TrimSpace([]byte(r.raw)), "", "  "); err != nil {
				t.Fatal(err)
			}
			got := strings.NewReplacer(id, "usr_ID", gid, "grp_GID").Replace(buf.String()) + "\n"
			file := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from golden:\n%s", name, got)
			}
		})
	}
	if r := e.do("GET", "/scim/v2/Schemas/urn:nope", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown schema: %d", r.status)
	}
}
