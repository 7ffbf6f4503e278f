package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
)

type openAPIDocument struct {
	OpenAPI       string                                `json:"openapi"`
	MaxBodyBytes  int64                                 `json:"x-max-body-bytes"`
	Paths         map[string]map[string]json.RawMessage `json:"paths"`
	Components    map[string]map[string]json.RawMessage `json:"components"`
	SecuritySpecs []map[string][]string                 `json:"security"`
}

func loadDoc(t *testing.T) openAPIDocument {
	t.Helper()
	var d openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// TestOpenAPIMatchesRoutes: every route served is in the document with its
// method and access rule, and every operation documented is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	d := loadDoc(t)
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", d.OpenAPI)
	}
	if d.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Errorf("document states a body limit of %d, the server's is %d", d.MaxBodyBytes, DefaultMaxBodyBytes)
	}
	names := map[access]string{accessPublic: "public", accessAny: "any", accessSuperuser: "superuser", accessRead: "read", accessWrite: "write"}
	served := map[string]bool{}
	for _, rt := range routes() {
		key := rt.method + " " + rt.path
		served[key] = true
		raw, ok := d.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("served but not documented: %s", key)
			continue
		}
		var op struct {
			Access    string                     `json:"x-access"`
			Responses map[string]json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatal(err)
		}
		if op.Access != names[rt.access] {
			t.Errorf("%s: documented access %q, served %q", key, op.Access, names[rt.access])
		}
		if rt.access != accessPublic {
			if _, ok := op.Responses["401"]; !ok {
				t.Errorf("%s: 401 not documented", key)
			}
		}
	}
	for path, ops := range d.Paths {
		for method := range ops {
			if key := strings.ToUpper(method) + " " + path; !served[key] {
				t.Errorf("documented but not served: %s", key)
			}
		}
	}
}

// TestOpenAPIRefsResolve: every $ref points at a component.
func TestOpenAPIRefsResolve(t *testing.T) {
	d := loadDoc(t)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(r, "#/components/"), "/")
				if len(parts) != 2 || d.Components[parts[0]][parts[1]] == nil {
					t.Errorf("dangling $ref %s", r)
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	var all any
	_ = json.Unmarshal(openAPIDoc, &all)
	walk(all)
}

// TestOpenAPISchemasMatchTypes: the documented properties of each schema
// are exactly the JSON fields of the Go type the API reads or writes, so a
// field the API accepts cannot go undocumented (unknown fields are refused).
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	d := loadDoc(t)
	for name, typ := range map[string]any{
		"TenantInput": tenantInput{}, "Tenant": tenantJSON{},
		"UserInput": userInput{}, "User": userJSON{},
		"GroupInput": groupInput{}, "Group": groupJSON{}, "Member": memberJSON{},
		"AppInput": appInput{}, "App": appJSON{},
		"APITokenInput": apiTokenInput{}, "SCIMTokenInput": scimTokenInput{}, "Token": tokenJSON{},
		"SigningKey": keyJSON{},
		"JITPolicy":  gatehouse.JITPolicy{}, "AttributeMapping": gatehouse.AttributeMapping{},
		"AuditEvent": gatehouse.AuditEvent{}, "Error": errorBody{},
		"WebhookInput": webhookInput{}, "Webhook": webhookJSON{}, "WebhookDelivery": deliveryJSON{},
		"ImportInput": importInput{}, "ImportRow": importRow{}, "ImportResult": importResult{}, "ImportRowError": importRowError{},
		"ImportErrors": importErrorBody{},
	} {
		var schema struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(d.Components["schemas"][name], &schema); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var documented []string
		for p := range schema.Properties {
			documented = append(documented, p)
		}
		sort.Strings(documented)
		if got := jsonFields(reflect.TypeOf(typ)); !slices.Equal(got, documented) {
			t.Errorf("schema %s documents %v; the Go type has %v", name, documented, got)
		}
	}
	var conn struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(d.Components["schemas"]["ConnectionInput"], &conn)
	for _, f := range connCommon {
		if conn.Properties[f] == nil {
			t.Errorf("ConnectionInput lacks common field %s", f)
		}
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnvWithStore(t, failingStore{}, nil)
	r := e.do("GET", "/api/v1/openapi.json", "", nil)
	if r.Status != 200 || !bytes.Equal(r.Body, openAPIDoc) || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", r.Status, r.Header.Get("Content-Type"))
	}
}
