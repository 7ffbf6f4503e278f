package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

func testUsers(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	u := &gatehouse.User{TenantID: te.ID, Email: "Ana.Silva@Acme.com", Username: "Ana", DisplayName: "Ana Silva",
		GivenName: "Ana", FamilyName: "Silva", Status: gatehouse.StatusActive, ExternalID: "00u1",
		Source: gatehouse.SourceSCIM, Attributes: map[string]any{"department": "R&D", "level": 3.0}}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateUser(ctx, u) })
	if u.ID == "" || u.Version != 1 || u.CreatedAt.IsZero() {
		t.Fatalf("CreateUser did not fill ID, Version, CreatedAt: %+v", u)
	}
	// A SCIM user may have no email at all.
	noEmail := &gatehouse.User{TenantID: te.ID, Username: "bo", Status: gatehouse.StatusActive, Source: gatehouse.SourceSCIM}
	noEmail2 := &gatehouse.User{TenantID: te.ID, Username: "cy", Status: gatehouse.StatusActive, Source: gatehouse.SourceSCIM}
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.CreateUser(ctx, noEmail); err != nil {
			return err
		}
		return tx.CreateUser(ctx, noEmail2)
	})

	view(t, s, func(tx gatehouse.Tx) error {
		for name, get := range map[string]func() (*gatehouse.User, error){
			"GetUser":             func() (*gatehouse.User, error) { return tx.GetUser(ctx, te.ID, u.ID) },
			"GetUserByEmail":      func() (*gatehouse.User, error) { return tx.GetUserByEmail(ctx, te.ID, " ana.silva@ACME.com ") },
			"GetUserByUsername":   func() (*gatehouse.User, error) { return tx.GetUserByUsername(ctx, te.ID, "aNa") },
			"GetUserByExternalID": func() (*gatehouse.User, error) { return tx.GetUserByExternalID(ctx, te.ID, "00u1") },
		} {
			got, err := get()
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			check(t, name, u, got)
			if got.Groups == nil {
				t.Errorf("%s: Groups is nil, want an empty list", name)
			}
		}
		_, err := tx.GetUserByExternalID(ctx, te.ID, "00U1")
		wantCode(t, "external id is case-exact", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetUserByEmail(ctx, te.ID, "")
		wantCode(t, "GetUserByEmail(empty)", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetUser(ctx, te.ID, "usr_missing")
		wantCode(t, "GetUser(missing)", err, gatehouse.ENOTFOUND, "")
		taken, err := tx.UsernameTaken(ctx, te.ID, "ANA")
		if err != nil || !taken {
			t.Errorf("UsernameTaken(ANA) = %v, %v; want true", taken, err)
		}
		taken, err = tx.UsernameTaken(ctx, te.ID, "zed")
		if err != nil || taken {
			t.Errorf("UsernameTaken(zed) = %v, %v; want false", taken, err)
		}
		n, err := tx.CountUsers(ctx, te.ID, gatehouse.UserFilter{})
		if err != nil || n != 3 {
			t.Errorf("CountUsers = %d, %v; want 3", n, err)
		}
		return nil
	})

	// Update writes every field and bumps the version.
	u.Email, u.Username, u.DisplayName, u.Status = "ana@acme.com", "ana.s", "Ana S.", gatehouse.StatusDeactivated
	u.Attributes = map[string]any{"department": "Sales"}
	u.ExternalID = ""
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateUser(ctx, u) })
	if u.Version != 2 {
		t.Errorf("Version after UpdateUser = %d, want 2", u.Version)
	}
	login := time.Now().Add(-time.Minute)
	update(t, s, func(tx gatehouse.Tx) error { return tx.TouchUserLogin(ctx, te.ID, u.ID, login) })
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetUser(ctx, te.ID, u.ID)
		if err != nil {
			return err
		}
		if got.LastLoginAt == nil || !got.LastLoginAt.Equal(login.Truncate(time.Microsecond)) {
			t.Errorf("LastLoginAt = %v, want %v", got.LastLoginAt, login)
		}
		if got.Version != 2 {
			t.Errorf("TouchUserLogin changed the version to %d", got.Version)
		}
		got.LastLoginAt = nil
		check(t, "after UpdateUser", u, got)
		_, err = tx.GetUserByEmail(ctx, te.ID, "ana.silva@acme.com")
		wantCode(t, "old email", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetUserByExternalID(ctx, te.ID, "00u1")
		wantCode(t, "cleared external id", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.TouchUserLogin(ctx, te.ID, "usr_missing", login)
	})
	wantCode(t, "TouchUserLogin(missing)", err, gatehouse.ENOTFOUND, "")
	err = tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.UpdateUser(ctx, &gatehouse.User{TenantID: te.ID, ID: "usr_missing", Version: 1, Status: gatehouse.StatusActive})
	})
	wantCode(t, "UpdateUser(missing)", err, gatehouse.ENOTFOUND, "")
}

func testUserUniqueness(t *testing.T, s gatehouse.Store) {
	a := newTenant(t, s, "acme")
	b := newTenant(t, s, "globex")
	ana := newUser(t, s, a.ID, "ana@acme.com")
	update(t, s, func(tx gatehouse.Tx) error {
		ana.ExternalID = "ext-1"
		return tx.UpdateUser(ctx, ana)
	})
	for _, tc := range []struct {
		name  string
		user  gatehouse.User
		field string
	}{
		{"email in another case", gatehouse.User{Email: " ANA@Acme.COM", Username: "ana2"}, "email"},
		{"username in another case", gatehouse.User{Email: "x@acme.com", Username: "ANA@ACME.COM"}, "username"},
		{"external id", gatehouse.User{Email: "y@acme.com", Username: "y", ExternalID: "ext-1"}, "external_id"},
	} {
		u := tc.user
		u.TenantID, u.Status, u.Source = a.ID, gatehouse.StatusActive, gatehouse.SourceAdmin
		err := tryUpdate(s, func(tx gatehouse.Tx) error { return tx.CreateUser(ctx, &u) })
		wantCode(t, tc.name, err, gatehouse.ECONFLICT, tc.field)
	}
	// Updating another user onto a taken email is a conflict too.
	bo := newUser(t, s, a.ID, "bo@acme.com")
	bo.Email = "Ana@acme.com"
	err := tryUpdate(s, func(tx gatehouse.Tx) error { return tx.UpdateUser(ctx, bo) })
	wantCode(t, "UpdateUser onto a taken email", err, gatehouse.ECONFLICT, "email")
	// Uniqueness is per tenant.
	newUser(t, s, b.ID, "ANA@acme.com")
}

func testUserFilters(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	ana := newUser(t, s, te.ID, "ana@acme.com")
	bo := newUser(t, s, te.ID, "bo@acme.com")
	cy := &gatehouse.User{TenantID: te.ID, Email: "cy@acme.com", Username: "cy_100%", DisplayName: "Cyrus Zed",
		Status: gatehouse.StatusPending, Source: gatehouse.SourceSCIM}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateUser(ctx, cy) })
	eng := newGroup(t, s, te.ID, "Engineering")
	ops := newGroup(t, s, te.ID, "Ops")
	update(t, s, func(tx gatehouse.Tx) error {
		for _, m := range []*gatehouse.Membership{
			{TenantID: te.ID, GroupID: eng.ID, UserID: ana.ID, ManagedBy: gatehouse.ManagedByAdmin},
			{TenantID: te.ID, GroupID: eng.ID, UserID: ana.ID, ManagedBy: gatehouse.ManagedBySCIM},
			{TenantID: te.ID, GroupID: ops.ID, UserID: ana.ID, ManagedBy: gatehouse.ManagedBySCIM},
			{TenantID: te.ID, GroupID: ops.ID, UserID: bo.ID, ManagedBy: gatehouse.ManagedBySCIM},
		} {
			if err := tx.AddMembership(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tc := range []struct {
		name string
		f    gatehouse.UserFilter
		want []string
	}{
		{"all", gatehouse.UserFilter{}, []string{ana.ID, bo.ID, cy.ID}},
		{"email", gatehouse.UserFilter{Email: "BO@acme.com"}, []string{bo.ID}},
		{"username", gatehouse.UserFilter{Username: "CY_100%"}, []string{cy.ID}},
		{"source", gatehouse.UserFilter{Source: gatehouse.SourceSCIM}, []string{cy.ID}},
		{"status", gatehouse.UserFilter{Status: gatehouse.StatusActive}, []string{ana.ID, bo.ID}},
		{"group", gatehouse.UserFilter{GroupID: eng.ID}, []string{ana.ID}},
		{"group with two members", gatehouse.UserFilter{GroupID: ops.ID}, []string{ana.ID, bo.ID}},
		{"query on email", gatehouse.UserFilter{Query: "O@ACME"}, []string{bo.ID}},
		{"query on display name", gatehouse.UserFilter{Query: "rus z"}, []string{cy.ID}},
		{"query wildcard is literal", gatehouse.UserFilter{Query: "%"}, []string{cy.ID}},
		{"query underscore is literal", gatehouse.UserFilter{Query: "_"}, []string{cy.ID}},
		{"query matches nothing", gatehouse.UserFilter{Query: "%_%x"}, []string{}},
		{"combined", gatehouse.UserFilter{GroupID: ops.ID, Query: "bo"}, []string{bo.ID}},
	} {
		view(t, s, func(tx gatehouse.Tx) error {
			list, _, err := tx.ListUsers(ctx, te.ID, tc.f, gatehouse.Page{})
			if err != nil {
				return err
			}
			check(t, "ListUsers "+tc.name, tc.want, ids(list, userID))
			n, err := tx.CountUsers(ctx, te.ID, tc.f)
			if err != nil {
				return err
			}
			if n != len(tc.want) {
				t.Errorf("CountUsers %s = %d, want %d", tc.name, n, len(tc.want))
			}
			return nil
		})
	}
	// Groups are the distinct, sorted names, on every read.
	view(t, s, func(tx gatehouse.Tx) error {
		list, _, err := tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{}, gatehouse.Page{})
		if err != nil {
			return err
		}
		check(t, "ListUsers groups", [][]string{{"Engineering", "Ops"}, {"Ops"}, {}},
			[][]string{list[0].Groups, list[1].Groups, list[2].Groups})
		got, err := tx.GetUserByEmail(ctx, te.ID, "ana@acme.com")
		if err != nil {
			return err
		}
		check(t, "GetUserByEmail groups", []string{"Engineering", "Ops"}, got.Groups)
		return nil
	})
}

func testOptimisticConcurrency(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	u := newUser(t, s, te.ID, "ana@acme.com")
	var first, second gatehouse.User
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetUser(ctx, te.ID, u.ID)
		first, second = *got, *got
		return err
	})
	first.DisplayName = "first writer"
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateUser(ctx, &first) })
	second.DisplayName = "second writer"
	err := tryUpdate(s, func(tx gatehouse.Tx) error { return tx.UpdateUser(ctx, &second) })
	wantCode(t, "UpdateUser with a stale version", err, gatehouse.EPRECONDITION, "")
	if second.Version != u.Version {
		t.Errorf("a refused update changed the caller's version to %d", second.Version)
	}
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetUser(ctx, te.ID, u.ID)
		if err != nil {
			return err
		}
		if got.DisplayName != "first writer" || got.Version != 2 {
			t.Errorf("after the refused update: %q version %d, want %q version 2", got.DisplayName, got.Version, "first writer")
		}
		return nil
	})

	g := newGroup(t, s, te.ID, "Eng")
	stale := *g
	g.Name = "Engineering"
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateGroup(ctx, g) })
	if g.Version != 2 {
		t.Errorf("group version after UpdateGroup = %d, want 2", g.Version)
	}
	stale.Name = "R&D"
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.UpdateGroup(ctx, &stale) })
	wantCode(t, "UpdateGroup with a stale version", err, gatehouse.EPRECONDITION, "")
}

func testTombstones(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	u := newUser(t, s, te.ID, "ana@acme.com")
	keep := newUser(t, s, te.ID, "bo@acme.com")
	g := newGroup(t, s, te.ID, "Eng")
	c := newConnection(t, s, te.ID, "okta")
	link(t, s, u, c, "sub-ana")
	se := newSession(t, s, u, c.ID)
	update(t, s, func(tx gatehouse.Tx) error {
		return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: gatehouse.ManagedByAdmin})
	})

	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteUser(ctx, te.ID, u.ID) })
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetUser(ctx, te.ID, u.ID)
		wantCode(t, "GetUser(tombstone)", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetUserByUsername(ctx, te.ID, u.Username)
		wantCode(t, "GetUserByUsername(tombstone)", err, gatehouse.ENOTFOUND, "")
		got, err := tx.GetUserByEmail(ctx, te.ID, "ANA@acme.com")
		if err != nil {
			t.Errorf("GetUserByEmail(tombstone): %v", err)
		} else if got.DeletedAt == nil || got.Active() {
			t.Errorf("GetUserByEmail(tombstone) = %+v, want DeletedAt set", got)
		}
		list, _, err := tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{}, gatehouse.Page{})
		if err != nil {
			return err
		}
		check(t, "ListUsers without tombstones", []string{keep.ID}, ids(list, userID))
		list, _, err = tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{IncludeDeleted: true}, gatehouse.Page{})
		if err != nil {
			return err
		}
		check(t, "ListUsers with tombstones", []string{u.ID, keep.ID}, ids(list, userID))
		taken, err := tx.UsernameTaken(ctx, te.ID, u.Username)
		if err != nil || !taken {
			t.Errorf("UsernameTaken(tombstone) = %v, %v; want true", taken, err)
		}
		ms, err := tx.ListUserMemberships(ctx, te.ID, u.ID)
		if err != nil || len(ms) != 0 {
			t.Errorf("memberships of a tombstone: %v, %v", ms, err)
		}
		fis, err := tx.ListUserIdentities(ctx, te.ID, u.ID)
		if err != nil || len(fis) != 0 {
			t.Errorf("identities of a tombstone: %v, %v", fis, err)
		}
		_, err = tx.GetIdentity(ctx, te.ID, c.ID, "sub-ana")
		wantCode(t, "identity of a tombstone", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetSession(ctx, se.ID)
		wantCode(t, "session of a tombstone", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	// The tombstone keeps its email: it cannot be re-created until purged.
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Email: "ana@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT})
	})
	wantCode(t, "re-create a tombstoned email", err, gatehouse.ECONFLICT, "email")
	for name, fn := range map[string]func(tx gatehouse.Tx) error{
		"UpdateUser": func(tx gatehouse.Tx) error {
			return tx.UpdateUser(ctx, &gatehouse.User{TenantID: te.ID, ID: u.ID, Version: u.Version + 1, Email: "x@acme.com"})
		},
		"DeleteUser twice": func(tx gatehouse.Tx) error { return tx.DeleteUser(ctx, te.ID, u.ID) },
		"TouchUserLogin":   func(tx gatehouse.Tx) error { return tx.TouchUserLogin(ctx, te.ID, u.ID, time.Now()) },
		"AddMembership": func(tx gatehouse.Tx) error {
			return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: gatehouse.ManagedByAdmin})
		},
		"CreateIdentity": func(tx gatehouse.Tx) error {
			return tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c.ID, Subject: "s2", UserID: u.ID})
		},
	} {
		wantCode(t, name+" on a tombstone", tryUpdate(s, fn), gatehouse.ENOTFOUND, "")
	}

	update(t, s, func(tx gatehouse.Tx) error { return tx.PurgeUser(ctx, te.ID, u.ID) })
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetUserByEmail(ctx, te.ID, "ana@acme.com")
		wantCode(t, "GetUserByEmail(purged)", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.PurgeUser(ctx, te.ID, u.ID) })
	wantCode(t, "PurgeUser twice", err, gatehouse.ENOTFOUND, "")
	// Purged: the email is free again.
	newUser(t, s, te.ID, "ana@acme.com")
	// A live user can be purged directly, with its links.
	link(t, s, keep, c, "sub-bo")
	update(t, s, func(tx gatehouse.Tx) error { return tx.PurgeUser(ctx, te.ID, keep.ID) })
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetIdentity(ctx, te.ID, c.ID, "sub-bo")
		wantCode(t, "identity of a purged user", err, gatehouse.ENOTFOUND, "")
		return nil
	})
}
