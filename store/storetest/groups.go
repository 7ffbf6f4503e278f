package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

func testGroupsAndMemberships(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	other := newTenant(t, s, "globex")
	ana := newUser(t, s, te.ID, "ana@acme.com")
	bo := newUser(t, s, te.ID, "bo@acme.com")
	g := &gatehouse.Group{TenantID: te.ID, Name: "Engineering", ExternalID: "okta-eng", Source: gatehouse.SourceSCIM}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateGroup(ctx, g) })
	if g.ID == "" || g.Version != 1 {
		t.Fatalf("CreateGroup did not fill ID and Version: %+v", g)
	}
	for _, name := range []string{"engineering", " ENGINEERING "} {
		err := tryUpdate(s, func(tx gatehouse.Tx) error {
			return tx.CreateGroup(ctx, &gatehouse.Group{TenantID: te.ID, Name: name, Source: gatehouse.SourceAdmin})
		})
		wantCode(t, "group name "+name, err, gatehouse.ECONFLICT, "name")
	}
	newGroup(t, s, other.ID, "Engineering") // per tenant
	ops := newGroup(t, s, te.ID, "Ops")

	conn := gatehouse.ManagedByConnection("con_x")
	add := func(gid, uid, by string) {
		t.Helper()
		update(t, s, func(tx gatehouse.Tx) error {
			return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: gid, UserID: uid, ManagedBy: by})
		})
	}
	add(g.ID, ana.ID, gatehouse.ManagedByAdmin)
	add(g.ID, ana.ID, gatehouse.ManagedByAdmin) // idempotent
	add(g.ID, ana.ID, conn)
	add(g.ID, bo.ID, gatehouse.ManagedBySCIM)
	add(ops.ID, bo.ID, gatehouse.ManagedBySCIM)

	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: "grp_missing", UserID: ana.ID, ManagedBy: gatehouse.ManagedByAdmin})
	})
	wantCode(t, "AddMembership(missing group)", err, gatehouse.ENOTFOUND, "")
	err = tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: "usr_missing", ManagedBy: gatehouse.ManagedByAdmin})
	})
	wantCode(t, "AddMembership(missing user)", err, gatehouse.ENOTFOUND, "")

	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetGroup(ctx, te.ID, g.ID)
		if err != nil {
			return err
		}
		want := *g
		want.MemberCount = 2 // distinct users, whatever the managers
		check(t, "GetGroup", &want, got)
		got, err = tx.GetGroupByName(ctx, te.ID, "ENGINEERING")
		if err != nil {
			return err
		}
		check(t, "GetGroupByName", &want, got)
		list, next, err := tx.ListGroups(ctx, te.ID, gatehouse.Page{})
		if err != nil {
			return err
		}
		if next != "" || len(list) != 2 || list[0].ID != g.ID || list[0].MemberCount != 2 || list[1].MemberCount != 1 {
			t.Errorf("ListGroups = %+v, %q", list, next)
		}
		all, err := tx.ListGroupMembers(ctx, te.ID, g.ID, "")
		if err != nil {
			return err
		}
		if len(all) != 3 {
			t.Errorf("ListGroupMembers(all) = %d memberships, want 3", len(all))
		}
		scim, err := tx.ListGroupMembers(ctx, te.ID, g.ID, gatehouse.ManagedBySCIM)
		if err != nil {
			return err
		}
		if len(scim) != 1 || scim[0].UserID != bo.ID || scim[0].CreatedAt.IsZero() {
			t.Errorf("ListGroupMembers(scim) = %+v", scim)
		}
		mine, err := tx.ListUserMemberships(ctx, te.ID, ana.ID)
		if err != nil {
			return err
		}
		if len(mine) != 2 {
			t.Errorf("ListUserMemberships(ana) = %d, want 2", len(mine))
		}
		return nil
	})

	// Removing one manager's membership leaves the others.
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.RemoveMembership(ctx, te.ID, g.ID, ana.ID, conn); err != nil {
			return err
		}
		// Not found is not an error.
		return tx.RemoveMembership(ctx, te.ID, g.ID, ana.ID, conn)
	})
	view(t, s, func(tx gatehouse.Tx) error {
		ms, err := tx.ListUserMemberships(ctx, te.ID, ana.ID)
		if err != nil {
			return err
		}
		if len(ms) != 1 || ms[0].ManagedBy != gatehouse.ManagedByAdmin {
			t.Errorf("after RemoveMembership: %+v", ms)
		}
		return nil
	})

	g.Name = "Eng"
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateGroup(ctx, g) })
	g2 := *ops
	g2.Name = "ENG"
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.UpdateGroup(ctx, &g2) })
	wantCode(t, "UpdateGroup onto a taken name", err, gatehouse.ECONFLICT, "name")

	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteGroup(ctx, te.ID, g.ID) })
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetGroup(ctx, te.ID, g.ID)
		wantCode(t, "GetGroup(deleted)", err, gatehouse.ENOTFOUND, "")
		ms, err := tx.ListUserMemberships(ctx, te.ID, ana.ID)
		if err != nil || len(ms) != 0 {
			t.Errorf("memberships of a deleted group: %v, %v", ms, err)
		}
		u, err := tx.GetUser(ctx, te.ID, bo.ID)
		if err != nil {
			return err
		}
		check(t, "groups after DeleteGroup", []string{"Ops"}, u.Groups)
		return nil
	})
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.DeleteGroup(ctx, te.ID, g.ID) })
	wantCode(t, "DeleteGroup twice", err, gatehouse.ENOTFOUND, "")
}

func testIdentities(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	u := newUser(t, s, te.ID, "ana@acme.com")
	bo := newUser(t, s, te.ID, "bo@acme.com")
	c1 := newConnection(t, s, te.ID, "okta")
	c2 := newConnection(t, s, te.ID, "google")
	fi := link(t, s, u, c1, "00u-ana")
	link(t, s, u, c2, "1234")
	// The same subject at another connection is another identity.
	link(t, s, bo, c2, "00u-ana")
	// (connection, subject) links to one user only.
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c1.ID, Subject: "00u-ana", UserID: bo.ID})
	})
	wantCode(t, "identity linked twice", err, gatehouse.ECONFLICT, "subject")
	err = tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: "con_missing", Subject: "x", UserID: bo.ID})
	})
	wantCode(t, "identity at a missing connection", err, gatehouse.ENOTFOUND, "")

	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetIdentity(ctx, te.ID, c1.ID, "00u-ana")
		if err != nil {
			return err
		}
		check(t, "GetIdentity", fi, got)
		_, err = tx.GetIdentity(ctx, te.ID, c1.ID, "00U-ANA")
		wantCode(t, "subject is case-exact", err, gatehouse.ENOTFOUND, "")
		list, err := tx.ListUserIdentities(ctx, te.ID, u.ID)
		if err != nil {
			return err
		}
		if len(list) != 2 {
			t.Errorf("ListUserIdentities = %d, want 2", len(list))
		}
		return nil
	})
	at := time.Now().Add(-time.Second)
	update(t, s, func(tx gatehouse.Tx) error { return tx.TouchIdentity(ctx, te.ID, c1.ID, "00u-ana", at) })
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetIdentity(ctx, te.ID, c1.ID, "00u-ana")
		if err != nil {
			return err
		}
		if got.LastLoginAt == nil || !got.LastLoginAt.Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("LastLoginAt = %v, want %v", got.LastLoginAt, at)
		}
		return nil
	})
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.TouchIdentity(ctx, te.ID, c1.ID, "nobody", at) })
	wantCode(t, "TouchIdentity(missing)", err, gatehouse.ENOTFOUND, "")
}
