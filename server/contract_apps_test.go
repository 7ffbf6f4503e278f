package server_test

import (
	"regexp"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/servertest"
)

// Issue 8's app API as written: POST → 201 {"id","client_id",
// "client_secret"} (URL-safe, shown once), GET/list without the secret,
// rotation, DELETE; and a redirect URI the authorize endpoint would refuse
// at every sign-in is refused at registration instead.
func TestContractAppsAPI(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{Engine: "sqlite"})
	gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme", "name": "Acme"}, nil)
	gh.API(t, "POST", "/api/v1/tenants/acme/groups", map[string]any{"name": "staff"}, nil)
	var a map[string]any
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{
		"name": "wiki", "redirect_uris": []string{"https://wiki.acme.com/cb"}, "id_token_signing_alg": "ES256", "allowed_groups": []string{"staff"},
	}, &a); code != 201 {
		t.Fatalf("create: %d", code)
	}
	sec, _ := a["client_secret"].(string)
	if a["id"] == nil || a["client_id"] == nil || !regexp.MustCompile(`^[A-Za-z0-9_-]{32,}$`).MatchString(sec) {
		t.Fatalf("created %v", a)
	}
	id := a["id"].(string)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	var one map[string]any
	if gh.API(t, "GET", "/api/v1/tenants/acme/apps/"+id, nil, &one) != 200 || gh.API(t, "GET", "/api/v1/tenants/acme/apps", nil, &list) != 200 || len(list.Items) != 1 {
		t.Fatalf("get %v, list %v", one, list)
	}
	for _, got := range []map[string]any{one, list.Items[0]} {
		if _, shown := got["client_secret"]; shown {
			t.Fatalf("secret shown again: %v", got)
		}
	}
	var rot map[string]any
	if code := gh.API(t, "POST", "/api/v1/tenants/acme/apps/"+id+"/rotate-secret", nil, &rot); code != 200 || rot["client_secret"] == sec || rot["client_secret"] == nil {
		t.Fatalf("rotate: %d %v", code, rot)
	}
	if code := gh.API(t, "DELETE", "/api/v1/tenants/acme/apps/"+id, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := gh.API(t, "GET", "/api/v1/tenants/acme/apps/"+id, nil, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}

	for _, tc := range []struct {
		public bool
		uri    string
		want   int
	}{
		{false, "http://127.0.0.1:8000/cb", 201},
		{true, "https://spa.acme.com/cb", 201},
		{true, "http://spa.acme.com/cb", 400},
		{false, "com.acme.app:/cb", 400},
	} {
		var out struct {
			Error struct{ Field string } `json:"error"`
		}
		code := gh.API(t, "POST", "/api/v1/tenants/acme/apps", map[string]any{"name": "x", "public": tc.public, "redirect_uris": []string{tc.uri}}, &out)
		if code != tc.want || (code == 400 && out.Error.Field != "redirect_uris") {
			t.Errorf("public=%v %s: %d, want %d (%+v)", tc.public, tc.uri, code, tc.want, out)
		}
	}
}
