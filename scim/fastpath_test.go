package scim_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/scim"
)

// plainStore hides the store's optional fast paths (sqlstore's
// QuerySCIMUsers, LookupSCIMToken), so a handler on it runs the general
// code: the reference the fast paths are compared with.
type plainStore struct{ gatehouse.Store }

// TestUserListFastPath: GET /Users answers byte for byte the same through
// the one-statement QuerySCIMUsers as through QueryUsers and a
// ListUserMemberships per user, for lookups, pages that need the count,
// projections, sorting and group filters, on both engines.
func TestUserListFastPath(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		// Users with SCIM memberships, an admin membership SCIM must not
		// show, a group id that needs the length-prefixed encoding, and a
		// deleted user.
		var ids []string
		for i := 0; i < 7; i++ {
			ids = append(ids, e.createUser(fmt.Sprintf("user%d@acme.com", i), map[string]any{
				"externalId": fmt.Sprintf("ext-%d", i), "name": map[string]any{"givenName": "U", "familyName": fmt.Sprint(6 - i)}}))
		}
		g1 := e.do("POST", "/scim/v2/Groups", map[string]any{"displayName": "Eng", "members": []any{
			map[string]any{"value": ids[0]}, map[string]any{"value": ids[1]}, map[string]any{"value": ids[2]}}}).want(t, 201).str("id")
		g2 := e.do("POST", "/scim/v2/Groups", map[string]any{"displayName": "Ops", "members": []any{
			map[string]any{"value": ids[1]}}}).want(t, 201).str("id")
		odd := &gatehouse.Group{ID: "grp_12:x,3", TenantID: e.tenant.ID, Name: "Odd", Source: gatehouse.SourceSCIM}
		admin := &gatehouse.Group{TenantID: e.tenant.ID, Name: "Admins"}
		e.update(func(tx gatehouse.Tx) error {
			for _, g := range []*gatehouse.Group{odd, admin} {
				if err := tx.CreateGroup(e.ctx, g); err != nil {
					return err
				}
			}
			for _, m := range []*gatehouse.Membership{
				{TenantID: e.tenant.ID, GroupID: odd.ID, UserID: ids[1], ManagedBy: gatehouse.ManagedBySCIM},
				{TenantID: e.tenant.ID, GroupID: admin.ID, UserID: ids[1], ManagedBy: gatehouse.ManagedByAdmin},
				{TenantID: e.tenant.ID, GroupID: g1, UserID: ids[3], ManagedBy: gatehouse.ManagedByAdmin},
			} {
				if err := tx.AddMembership(e.ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
		_ = g2
		e.do("DELETE", "/scim/v2/Users/"+ids[6], nil).want(t, 204)

		slow := scim.New(scim.Config{Store: plainStore{e.store}, Clock: e.clock, PublicURL: publicURL, Logger: quiet})
		fast := e.h
		for _, q := range []string{
			"",
			"count=3",
			"startIndex=3&count=2",
			"startIndex=20",
			"count=0",
			"count=100&startIndex=1",
			"filter=" + url.QueryEscape(`userName eq "USER1@acme.com"`),
			"filter=" + url.QueryEscape(`userName eq "nobody@acme.com"`),
			"filter=" + url.QueryEscape(`userName eq "user6@acme.com"`),
			"filter=" + url.QueryEscape(`externalId eq "ext-2"`),
			"filter=" + url.QueryEscape(`emails.value co "acme"`) + "&count=4",
			"filter=" + url.QueryEscape(`userName sw "user"`) + "&sortBy=name.familyName&sortOrder=descending",
			"filter=" + url.QueryEscape(`groups.value eq "`+g1+`"`),
			"filter=" + url.QueryEscape(`groups.value eq "`+odd.ID+`"`),
			"filter=" + url.QueryEscape(`groups pr`) + "&attributes=groups",
			"attributes=userName",
			"excludedAttributes=groups",
			"attributes=groups.value&count=2",
		} {
			e.h = slow
			want := e.do("GET", "/scim/v2/Users?"+q, nil)
			e.h = fast
			got := e.do("GET", "/scim/v2/Users?"+q, nil)
			if got.status != want.status || got.raw != want.raw {
				t.Errorf("GET /Users?%s\nfast %d %s\nslow %d %s", q, got.status, got.raw, want.status, want.raw)
			}
		}
		// The odd group id made it through the encoding.
		r := e.do("GET", "/scim/v2/Users/"+ids[1], nil).want(t, 200)
		if n := len(r.doc["groups"].([]any)); n != 3 {
			t.Errorf("user1 has %d SCIM groups, want 3: %s", n, r.raw)
		}
	})
}
