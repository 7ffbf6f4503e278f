package scim_test

import (
	"reflect"
	"sort"
	"sync"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/scim"
)

func TestGroupsKeepManualMemberships(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		a := e.createUser("a@acme.com", nil)
		b := e.createUser("b@acme.com", nil)
		c := e.createUser("c@acme.com", nil)
		// An admin made "Admins" by hand and put c in it.
		admins := &gatehouse.Group{TenantID: e.tenant.ID, Name: "Admins", Source: gatehouse.SourceAdmin}
		e.update(func(tx gatehouse.Tx) error {
			if err := tx.CreateGroup(e.ctx, admins); err != nil {
				return err
			}
			return tx.AddMembership(e.ctx, &gatehouse.Membership{TenantID: e.tenant.ID, GroupID: admins.ID, UserID: c, ManagedBy: gatehouse.ManagedByAdmin})
		})
		// The IdP pushes a group of the same name: adopted, not duplicated.
		r := e.do("POST", "/scim/v2/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "admins", "externalId": "okta-g1",
			"members": []any{map[string]any{"value": a}}}).want(t, 201)
		if r.str("id") != admins.ID {
			t.Fatalf("adoption gave id %s, want %s", r.str("id"), admins.ID)
		}
		if !e.hasAudit("scim.group.adopted", admins.ID) {
			t.Error("no scim.group.adopted event")
		}
		// SCIM sees only its own members: c (manual) is invisible.
		if got := memberIDs(r); !reflect.DeepEqual(got, []string{a}) {
			t.Errorf("SCIM members %v", got)
		}
		// A replace of all members leaves the manual membership alone,
		// even when SCIM names the same user (two memberships, two managers).
		r = e.do("PATCH", "/scim/v2/Groups/"+admins.ID, ops(map[string]any{"op": "replace", "path": "members",
			"value": []any{map[string]any{"value": b}, map[string]any{"value": c}}})).want(t, 200)
		if got := memberIDs(r); !sameSet(got, []string{b, c}) {
			t.Errorf("after replace %v", got)
		}
		r = e.do("PUT", "/scim/v2/Groups/"+admins.ID, map[string]any{"displayName": "Admins", "externalId": "okta-g1", "members": []any{}}).want(t, 200)
		if len(memberIDs(r)) != 0 {
			t.Errorf("after PUT with no members: %v", memberIDs(r))
		}
		var all []*gatehouse.Membership
		e.view(func(tx gatehouse.Tx) (err error) {
			all, err = tx.ListGroupMembers(e.ctx, e.tenant.ID, admins.ID, "")
			return err
		})
		if len(all) != 1 || all[0].UserID != c || all[0].ManagedBy != gatehouse.ManagedByAdmin {
			t.Errorf("memberships after SCIM replaced everything: %+v", all)
		}
		// A second POST of an already SCIM-managed group is a conflict.
		e.do("POST", "/scim/v2/Groups", map[string]any{"displayName": "ADMINS"}).wantError(t, 409, "uniqueness")

		// The user's groups attribute lists SCIM memberships only.
		e.do("PATCH", "/scim/v2/Groups/"+admins.ID, ops(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": a}}})).want(t, 200)
		r = e.do("GET", "/scim/v2/Users/"+a, nil).want(t, 200)
		if dig(r.doc, "groups.0.value") != admins.ID {
			t.Errorf("user groups: %s", r.raw)
		}
		if r = e.do("GET", "/scim/v2/Users/"+c, nil).want(t, 200); r.doc["groups"] != nil {
			t.Errorf("manual membership visible to SCIM: %s", r.raw)
		}
		// groups is read-only on users.
		e.do("PATCH", "/scim/v2/Users/"+a, ops(map[string]any{"op": "add", "path": "groups", "value": []any{map[string]any{"value": admins.ID}}})).wantError(t, 400, "mutability")
		// Users filter by group.
		r = e.do("GET", "/scim/v2/Users?filter=groups.value+eq+%22"+admins.ID+"%22", nil).want(t, 200)
		if got := usernames(r); !reflect.DeepEqual(got, []string{"a@acme.com"}) {
			t.Errorf("users in group %v", got)
		}

		// Members must be live users of this tenant.
		_, tokB, _ := e.newTenant("beta")
		_ = tokB
		e.do("PATCH", "/scim/v2/Groups/"+admins.ID, ops(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": "usr_nope"}}})).wantError(t, 400, "invalidValue")
		e.do("PATCH", "/scim/v2/Groups/"+admins.ID, ops(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": admins.ID, "type": "Group"}}})).wantError(t, 400, "invalidValue")
		// Removing a member that is not there succeeds (retries are safe).
		e.do("PATCH", "/scim/v2/Groups/"+admins.ID, ops(map[string]any{"op": "remove", "path": `members[value eq "usr_gone"]`})).want(t, 200)
		// Deleting a user removes its memberships.
		e.do("DELETE", "/scim/v2/Users/"+a, nil).want(t, 204)
		if r = e.do("GET", "/scim/v2/Groups/"+admins.ID, nil).want(t, 200); len(memberIDs(r)) != 0 {
			t.Errorf("deleted user still a member: %s", r.raw)
		}
		if !e.hasAudit("scim.group.updated", admins.ID) {
			t.Error("no scim.group.updated event")
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return reflect.DeepEqual(a, b)
}

func TestOutboxEvents(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		// The outbox is written only for a tenant with an enabled webhook.
		e.update(func(tx gatehouse.Tx) error {
			return tx.CreateWebhook(e.ctx, &gatehouse.Webhook{TenantID: e.tenant.ID, URL: "https://hooks.example/in",
				Events: []string{"*"}, Enabled: true, Secret: []byte("sealed")})
		})
		id := e.createUser("out@acme.com", nil)
		e.do("PATCH", "/scim/v2/Users/"+id, ops(map[string]any{"op": "replace", "path": "active", "value": false})).want(t, 200)
		e.do("DELETE", "/scim/v2/Users/"+id, nil).want(t, 204)
		var list []*gatehouse.OutboxEvent
		e.view(func(tx gatehouse.Tx) (err error) { list, err = tx.ListPendingOutbox(e.ctx, 100); return err })
		var types []string
		for _, ev := range list {
			if ev.TenantID == e.tenant.ID {
				types = append(types, ev.Type)
			}
		}
		if want := []string{"user.created", "user.deactivated", "user.deleted"}; !reflect.DeepEqual(types, want) {
			t.Errorf("outbox %v, want %v", types, want)
		}
	})
}

// Entra adds members to one group in parallel PATCHes: each must succeed
// (no 412 for a client that sent no If-Match, no 500) and none be lost.
func TestConcurrentGroupPatches(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		gid := e.do("POST", "/scim/v2/Groups", map[string]any{"displayName": "Parallel"}).want(t, 201).str("id")
		const n = 10
		ids := make([]string, n)
		for i := range ids {
			ids[i] = e.createUser("p"+string(rune('a'+i))+"@acme.com", nil)
		}
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := e.do("PATCH", "/scim/v2/Groups/"+gid, ops(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": ids[i]}}}))
				if r.status != 200 {
					t.Errorf("parallel PATCH: %d %s", r.status, r.raw)
				}
			}(i)
		}
		wg.Wait()
		r := e.do("GET", "/scim/v2/Groups/"+gid, nil).want(t, 200)
		if got := memberIDs(r); !sameSet(got, ids) {
			t.Errorf("members %v, want all %d", got, n)
		}
	})
}
