package api

import (
	"net/http"
	"testing"
)

// TestContractMembershipPutDeleteIdempotent: issue 3's PUT and DELETE
// .../groups/{id}/members/{user_id} take no body and no Content-Type, answer
// 204 every time, and only a real change writes an audit event (audit events
// describe changes; a repeated PUT or DELETE changes nothing).
func TestContractMembershipPutDeleteIdempotent(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme", "acme.test")
		u := e.must(http.StatusCreated, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ana@acme.test"})["id"].(string)
		g := e.must(http.StatusCreated, "POST", "/api/v1/tenants/acme/groups", rootToken, map[string]any{"name": "Eng"})["id"].(string)
		path := "/api/v1/tenants/acme/groups/" + g + "/members/" + u
		for _, step := range []struct {
			method  string
			members int
			events  int // audit events this step adds
		}{
			{"PUT", 1, 1}, {"PUT", 1, 0}, {"DELETE", 0, 1}, {"DELETE", 0, 0}, {"PUT", 1, 1},
		} {
			before, _ := e.counts(tid)
			if r := e.do(step.method, path, rootToken, nil); r.Status != http.StatusNoContent {
				t.Fatalf("%s: %d %s", step.method, r.Status, r.Body)
			}
			after, _ := e.counts(tid)
			if after-before != step.events {
				t.Errorf("%s wrote %d audit events, want %d", step.method, after-before, step.events)
			}
			grp := e.must(http.StatusOK, "GET", "/api/v1/tenants/acme/groups/"+g, rootToken, nil)
			if n := int(grp["member_count"].(float64)); n != step.members {
				t.Errorf("after %s: member_count %d, want %d", step.method, n, step.members)
			}
		}
	})
}
