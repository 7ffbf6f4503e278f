package scim_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/scim"
)

func bulkReq(failOnErrors int, ops ...map[string]any) map[string]any {
	l := make([]any, len(ops))
	for i, o := range ops {
		l[i] = o
	}
	b := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}, "Operations": l}
	if failOnErrors > 0 {
		b["failOnErrors"] = failOnErrors
	}
	return b
}

func bulkResults(t *testing.T, r *resp) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, o := range r.doc["Operations"].([]any) {
		out = append(out, o.(map[string]any))
	}
	return out
}

func TestBulk(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		// The group refers to a user created later in the same request:
		// bulkId references resolve whatever the order (RFC 7644 §3.7.2).
		r := e.do("POST", "/scim/v2/Bulk", bulkReq(0,
			map[string]any{"method": "POST", "path": "/Groups", "bulkId": "g1",
				"data": map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "Tour Guides", "members": []any{map[string]any{"type": "User", "value": "bulkId:u1"}}}},
			map[string]any{"method": "POST", "path": "/Users", "bulkId": "u1",
				"data": map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "alice@acme.com"}},
			map[string]any{"method": "PATCH", "path": "/Users/bulkId:u1",
				"data": ops(map[string]any{"op": "replace", "path": "displayName", "value": "Alice"})},
		)).want(t, 200)
		res := bulkResults(t, r)
		if len(res) != 3 {
			t.Fatalf("results %s", r.raw)
		}
		if res[0]["status"] != "201" || res[1]["status"] != "201" || res[2]["status"] != "200" {
			t.Fatalf("statuses: %s", r.raw)
		}
		uid := strings.TrimPrefix(res[1]["location"].(string), publicURL+"/scim/v2/Users/")
		gloc := res[0]["location"].(string)
		g := e.do("GET", strings.TrimPrefix(gloc, publicURL), nil).want(t, 200)
		if got := memberIDs(g); len(got) != 1 || got[0] != uid {
			t.Errorf("group members %v, want [%s]", got, uid)
		}
		if u := e.getUser(uid); u.DisplayName != "Alice" {
			t.Errorf("PATCH via bulkId: %+v", u)
		}
		if res[1]["version"] != `W/"1"` || res[1]["bulkId"] != "u1" {
			t.Errorf("result fields %v", res[1])
		}

		// failOnErrors stops after that many errors.
		r = e.do("POST", "/scim/v2/Bulk", bulkReq(1,
			map[string]any{"method": "POST", "path": "/Users", "bulkId": "d1", "data": map[string]any{"userName": "alice@acme.com"}},
			map[string]any{"method": "POST", "path": "/Users", "bulkId": "d2", "data": map[string]any{"userName": "bob@acme.com"}},
		)).want(t, 200)
		res = bulkResults(t, r)
		if len(res) != 1 || res[0]["status"] != "409" || dig(res[0], "response.scimType") != "uniqueness" {
			t.Errorf("failOnErrors=1: %s", r.raw)
		}
		// Without it, every operation runs; errors are per operation.
		r = e.do("POST", "/scim/v2/Bulk", bulkReq(0,
			map[string]any{"method": "POST", "path": "/Users", "bulkId": "d1", "data": map[string]any{"userName": "alice@acme.com"}},
			map[string]any{"method": "POST", "path": "/Users", "bulkId": "d2", "data": map[string]any{"userName": "bob@acme.com"}},
			map[string]any{"method": "DELETE", "path": "/Users/usr_missing"},
			map[string]any{"method": "PUT", "path": "/Users/bulkId:nowhere", "data": map[string]any{"userName": "x"}},
			map[string]any{"method": "DELETE", "path": "/Users/" + uid, "version": `W/"99"`},
		)).want(t, 200)
		res = bulkResults(t, r)
		got := []string{}
		for _, o := range res {
			got = append(got, o["status"].(string))
		}
		if strings.Join(got, ",") != "409,201,404,400,412" {
			t.Errorf("statuses %v: %s", got, r.raw)
		}
		// A cycle of references is refused, not looped on.
		r = e.do("POST", "/scim/v2/Bulk", bulkReq(0,
			map[string]any{"method": "POST", "path": "/Groups", "bulkId": "c1", "data": map[string]any{"displayName": "C1", "members": []any{map[string]any{"value": "bulkId:c2"}}}},
			map[string]any{"method": "POST", "path": "/Groups", "bulkId": "c2", "data": map[string]any{"displayName": "C2", "members": []any{map[string]any{"value": "bulkId:c1"}}}},
		)).want(t, 200)
		for _, o := range bulkResults(t, r) {
			if o["status"] != "409" {
				t.Errorf("cycle: %s", r.raw)
			}
		}

		// Limits.
		var many []map[string]any
		for i := 0; i < 1001; i++ {
			many = append(many, map[string]any{"method": "DELETE", "path": "/Users/x"})
		}
		e.do("POST", "/scim/v2/Bulk", bulkReq(0, many...)).wantError(t, http.StatusRequestEntityTooLarge, "")
		e.do("POST", "/scim/v2/Bulk", bulkReq(0, map[string]any{"method": "POST", "path": "/Users", "data": map[string]any{"userName": "n"}})).wantError(t, 400, "invalidValue")
		e.do("POST", "/scim/v2/Bulk", bulkReq(0)).wantError(t, 400, "invalidSyntax")
		r = e.do("POST", "/scim/v2/Bulk", bulkReq(0, map[string]any{"method": "POST", "path": "/Bulk", "bulkId": "b", "data": map[string]any{}})).want(t, 200)
		if bulkResults(t, r)[0]["status"] != "400" {
			t.Errorf("nested bulk: %s", r.raw)
		}
	})
}
