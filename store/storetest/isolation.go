package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// tenantFixture is one tenant with one of everything.
type tenantFixture struct {
	tenant  *gatehouse.Tenant
	user    *gatehouse.User
	group   *gatehouse.Group
	conn    *gatehouse.Connection
	ident   *gatehouse.FederatedIdentity
	app     *gatehouse.App
	api     *gatehouse.APIToken
	scim    *gatehouse.SCIMToken
	key     *gatehouse.SigningKey
	session *gatehouse.Session
}

func newFixture(t *testing.T, s gatehouse.Store, slug string) *tenantFixture {
	t.Helper()
	f := &tenantFixture{tenant: newTenant(t, s, slug, slug+".com")}
	id := f.tenant.ID
	f.user = newUser(t, s, id, "ana@"+slug+".com")
	update(t, s, func(tx gatehouse.Tx) error {
		f.user.ExternalID = "ext-" + slug
		return tx.UpdateUser(ctx, f.user)
	})
	f.group = newGroup(t, s, id, "Engineering")
	f.conn = newConnection(t, s, id, "okta")
	f.ident = link(t, s, f.user, f.conn, "sub-ana")
	f.session = newSession(t, s, f.user, f.conn.ID)
	f.app = &gatehouse.App{TenantID: id, Name: "Wiki", ClientID: "wiki"}
	f.api = &gatehouse.APIToken{TenantID: id, Name: "ci", Role: gatehouse.RoleTenantAdmin, Hash: []byte(slug + "-api")}
	f.scim = &gatehouse.SCIMToken{TenantID: id, Name: "okta", Hash: []byte(slug + "-scim")}
	f.key = &gatehouse.SigningKey{TenantID: id, Alg: "RS256", Private: []byte("sealed"), PublicJWK: []byte(`{"kty":"RSA"}`)}
	update(t, s, func(tx gatehouse.Tx) error {
		for _, err := range []error{
			tx.AddMembership(ctx, &gatehouse.Membership{TenantID: id, GroupID: f.group.ID, UserID: f.user.ID, ManagedBy: gatehouse.ManagedByAdmin}),
			tx.CreateApp(ctx, f.app),
			tx.CreateAPIToken(ctx, f.api),
			tx.CreateSCIMToken(ctx, f.scim),
			tx.CreateSigningKey(ctx, f.key),
			tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: id, Action: "user.created", TargetID: f.user.ID}),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	return f
}

// Nothing of tenant A can be read or changed through tenant B: every
// tenant-scoped call made with B's ID on A's objects finds nothing and
// changes nothing.
func testTenantIsolation(t *testing.T, s gatehouse.Store) {
	a := newFixture(t, s, "acme")
	b := newFixture(t, s, "globex")
	B := b.tenant.ID
	now := time.Now()

	notFound := map[string]func(tx gatehouse.Tx) error{
		"GetUser":             func(tx gatehouse.Tx) error { _, err := tx.GetUser(ctx, B, a.user.ID); return err },
		"GetUserByEmail":      func(tx gatehouse.Tx) error { _, err := tx.GetUserByEmail(ctx, B, a.user.Email); return err },
		"GetUserByUsername":   func(tx gatehouse.Tx) error { _, err := tx.GetUserByUsername(ctx, B, a.user.Username); return err },
		"GetUserByExternalID": func(tx gatehouse.Tx) error { _, err := tx.GetUserByExternalID(ctx, B, a.user.ExternalID); return err },
		"UpdateUser": func(tx gatehouse.Tx) error {
			u := *a.user
			u.TenantID, u.DisplayName = B, "hijacked"
			return tx.UpdateUser(ctx, &u)
		},
		"TouchUserLogin": func(tx gatehouse.Tx) error { return tx.TouchUserLogin(ctx, B, a.user.ID, now) },
		"DeleteUser":     func(tx gatehouse.Tx) error { return tx.DeleteUser(ctx, B, a.user.ID) },
		"PurgeUser":      func(tx gatehouse.Tx) error { return tx.PurgeUser(ctx, B, a.user.ID) },
		"GetGroup":       func(tx gatehouse.Tx) error { _, err := tx.GetGroup(ctx, B, a.group.ID); return err },
		"UpdateGroup": func(tx gatehouse.Tx) error {
			g := *a.group
			g.TenantID, g.Name = B, "hijacked"
			return tx.UpdateGroup(ctx, &g)
		},
		"DeleteGroup": func(tx gatehouse.Tx) error { return tx.DeleteGroup(ctx, B, a.group.ID) },
		"AddMembership(B, A's group, A's user)": func(tx gatehouse.Tx) error {
			return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: B, GroupID: a.group.ID, UserID: a.user.ID, ManagedBy: gatehouse.ManagedByAdmin})
		},
		"AddMembership(B, B's group, A's user)": func(tx gatehouse.Tx) error {
			return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: B, GroupID: b.group.ID, UserID: a.user.ID, ManagedBy: gatehouse.ManagedByAdmin})
		},
		"AddMembership(B, A's group, B's user)": func(tx gatehouse.Tx) error {
			return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: B, GroupID: a.group.ID, UserID: b.user.ID, ManagedBy: gatehouse.ManagedByAdmin})
		},
		"GetIdentity": func(tx gatehouse.Tx) error { _, err := tx.GetIdentity(ctx, B, a.conn.ID, "sub-ana"); return err },
		"TouchIdentity": func(tx gatehouse.Tx) error {
			return tx.TouchIdentity(ctx, B, a.conn.ID, "sub-ana", now)
		},
		"CreateIdentity(B, A's connection, B's user)": func(tx gatehouse.Tx) error {
			return tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: B, ConnectionID: a.conn.ID, Subject: "new", UserID: b.user.ID})
		},
		"CreateIdentity(B, B's connection, A's user)": func(tx gatehouse.Tx) error {
			return tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: B, ConnectionID: b.conn.ID, Subject: "new", UserID: a.user.ID})
		},
		"GetConnection": func(tx gatehouse.Tx) error { _, err := tx.GetConnection(ctx, B, a.conn.ID); return err },
		"UpdateConnection": func(tx gatehouse.Tx) error {
			c := *a.conn
			c.TenantID, c.Name = B, "hijacked"
			return tx.UpdateConnection(ctx, &c)
		},
		"DeleteConnection": func(tx gatehouse.Tx) error { return tx.DeleteConnection(ctx, B, a.conn.ID) },
		"GetApp":           func(tx gatehouse.Tx) error { _, err := tx.GetApp(ctx, B, a.app.ID); return err },
		"UpdateApp": func(tx gatehouse.Tx) error {
			app := *a.app
			app.TenantID, app.Name = B, "hijacked"
			return tx.UpdateApp(ctx, &app)
		},
		"DeleteApp":       func(tx gatehouse.Tx) error { return tx.DeleteApp(ctx, B, a.app.ID) },
		"DeleteAPIToken":  func(tx gatehouse.Tx) error { return tx.DeleteAPIToken(ctx, B, a.api.ID) },
		"DeleteSCIMToken": func(tx gatehouse.Tx) error { return tx.DeleteSCIMToken(ctx, B, a.scim.ID) },
		"UpdateSigningKey": func(tx gatehouse.Tx) error {
			k := *a.key
			k.TenantID, k.RetiredAt = B, &now
			return tx.UpdateSigningKey(ctx, &k)
		},
		"CreateSession(B, A's user)": func(tx gatehouse.Tx) error {
			return tx.CreateSession(ctx, &gatehouse.Session{ID: "ses-new", TenantID: B, UserID: a.user.ID, AuthTime: now, IdleExpiry: now, ExpiresAt: now})
		},
	}
	for name, fn := range notFound {
		wantCode(t, name+" across tenants", tryUpdate(s, fn), gatehouse.ENOTFOUND, "")
	}
	// GetAppByClientID with B finds B's own app of the same client_id, not A's.
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetAppByClientID(ctx, B, "wiki")
		if err != nil || got.ID != b.app.ID {
			t.Errorf("GetAppByClientID(B) = %+v, %v; want B's app", got, err)
		}
		g, err := tx.GetGroupByName(ctx, B, "engineering")
		if err != nil || g.ID != b.group.ID {
			t.Errorf("GetGroupByName(B) = %+v, %v; want B's group", g, err)
		}
		return nil
	})

	// Lists and counts through B show only B's objects.
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.RemoveMembership(ctx, B, a.group.ID, a.user.ID, gatehouse.ManagedByAdmin); err != nil {
			return err
		}
		n, err := tx.DeleteUserSessions(ctx, B, a.user.ID)
		if err != nil || n != 0 {
			t.Errorf("DeleteUserSessions across tenants = %d, %v", n, err)
		}
		return nil
	})
	view(t, s, func(tx gatehouse.Tx) error {
		users, _, err := tx.ListUsers(ctx, B, gatehouse.UserFilter{IncludeDeleted: true}, gatehouse.Page{})
		if err != nil || len(users) != 1 || users[0].ID != b.user.ID {
			t.Errorf("ListUsers(B) = %v, %v", ids(users, userID), err)
		}
		n, err := tx.CountUsers(ctx, B, gatehouse.UserFilter{GroupID: a.group.ID})
		if err != nil || n != 0 {
			t.Errorf("CountUsers(B, A's group) = %d, %v", n, err)
		}
		groups, _, err := tx.ListGroups(ctx, B, gatehouse.Page{})
		if err != nil || len(groups) != 1 || groups[0].ID != b.group.ID {
			t.Errorf("ListGroups(B) = %d groups, %v", len(groups), err)
		}
		members, err := tx.ListGroupMembers(ctx, B, a.group.ID, "")
		if err != nil || len(members) != 0 {
			t.Errorf("ListGroupMembers(B, A's group) = %d, %v", len(members), err)
		}
		ms, err := tx.ListUserMemberships(ctx, B, a.user.ID)
		if err != nil || len(ms) != 0 {
			t.Errorf("ListUserMemberships(B, A's user) = %d, %v", len(ms), err)
		}
		fis, err := tx.ListUserIdentities(ctx, B, a.user.ID)
		if err != nil || len(fis) != 0 {
			t.Errorf("ListUserIdentities(B, A's user) = %d, %v", len(fis), err)
		}
		conns, err := tx.ListConnections(ctx, B)
		if err != nil || len(conns) != 1 || conns[0].ID != b.conn.ID {
			t.Errorf("ListConnections(B) = %d, %v", len(conns), err)
		}
		apps, err := tx.ListApps(ctx, B)
		if err != nil || len(apps) != 1 || apps[0].ID != b.app.ID {
			t.Errorf("ListApps(B) = %d, %v", len(apps), err)
		}
		toks, err := tx.ListAPITokens(ctx, B)
		if err != nil || len(toks) != 1 || toks[0].ID != b.api.ID {
			t.Errorf("ListAPITokens(B) = %d, %v", len(toks), err)
		}
		stoks, err := tx.ListSCIMTokens(ctx, B)
		if err != nil || len(stoks) != 1 || stoks[0].ID != b.scim.ID {
			t.Errorf("ListSCIMTokens(B) = %d, %v", len(stoks), err)
		}
		keys, err := tx.ListSigningKeys(ctx, B)
		if err != nil || len(keys) != 1 || keys[0].ID != b.key.ID {
			t.Errorf("ListSigningKeys(B) = %d, %v", len(keys), err)
		}
		events, _, err := tx.ListAudit(ctx, B, gatehouse.AuditFilter{TargetID: a.user.ID}, gatehouse.Page{})
		if err != nil || len(events) != 0 {
			t.Errorf("ListAudit(B, A's user) = %d, %v", len(events), err)
		}
		taken, err := tx.UsernameTaken(ctx, B, "ana@acme.com")
		if err != nil || taken {
			t.Errorf("UsernameTaken(B, A's username) = %v, %v", taken, err)
		}
		return nil
	})

	// A is exactly as it was.
	view(t, s, func(tx gatehouse.Tx) error {
		A := a.tenant.ID
		u, err := tx.GetUser(ctx, A, a.user.ID)
		if err != nil {
			return err
		}
		want := *a.user
		want.Groups = []string{"Engineering"}
		check(t, "A's user", &want, u)
		g, err := tx.GetGroup(ctx, A, a.group.ID)
		if err != nil {
			return err
		}
		if g.Name != "Engineering" || g.Version != 1 || g.MemberCount != 1 {
			t.Errorf("A's group changed: %+v", g)
		}
		if _, err := tx.GetIdentity(ctx, A, a.conn.ID, "sub-ana"); err != nil {
			t.Errorf("A's identity: %v", err)
		}
		c, err := tx.GetConnection(ctx, A, a.conn.ID)
		if err != nil || c.Name != "okta" {
			t.Errorf("A's connection: %+v, %v", c, err)
		}
		app, err := tx.GetApp(ctx, A, a.app.ID)
		if err != nil || app.Name != "Wiki" {
			t.Errorf("A's app: %+v, %v", app, err)
		}
		if _, err := tx.GetAPITokenByHash(ctx, a.api.Hash); err != nil {
			t.Errorf("A's API token: %v", err)
		}
		if _, err := tx.GetSCIMTokenByHash(ctx, a.scim.Hash); err != nil {
			t.Errorf("A's SCIM token: %v", err)
		}
		if _, err := tx.GetSession(ctx, a.session.ID); err != nil {
			t.Errorf("A's session: %v", err)
		}
		keys, err := tx.ListSigningKeys(ctx, A)
		if err != nil || len(keys) != 1 || keys[0].RetiredAt != nil {
			t.Errorf("A's signing key: %+v, %v", keys, err)
		}
		return nil
	})
}

func testDeleteTenantCascades(t *testing.T, s gatehouse.Store) {
	a := newFixture(t, s, "acme")
	b := newFixture(t, s, "globex")
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.DeleteTenant(ctx, a.tenant.ID); err != nil {
			return err
		}
		// The event recording the deletion outlives the tenant.
		return tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: a.tenant.ID, Action: "tenant.deleted", TargetID: a.tenant.ID})
	})
	view(t, s, func(tx gatehouse.Tx) error {
		A := a.tenant.ID
		_, err := tx.GetUserByEmail(ctx, A, a.user.Email)
		wantCode(t, "user of a deleted tenant", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetConnectionByID(ctx, a.conn.ID)
		wantCode(t, "connection of a deleted tenant", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetAPITokenByHash(ctx, a.api.Hash)
		wantCode(t, "API token of a deleted tenant", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetSCIMTokenByHash(ctx, a.scim.Hash)
		wantCode(t, "SCIM token of a deleted tenant", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetSession(ctx, a.session.ID)
		wantCode(t, "session of a deleted tenant", err, gatehouse.ENOTFOUND, "")
		events, _, err := tx.ListAudit(ctx, A, gatehouse.AuditFilter{}, gatehouse.Page{})
		if err != nil || len(events) != 1 || events[0].Action != "tenant.deleted" {
			t.Errorf("audit of a deleted tenant: %+v, %v", events, err)
		}
		// B untouched.
		if _, err := tx.GetUser(ctx, b.tenant.ID, b.user.ID); err != nil {
			t.Errorf("B's user: %v", err)
		}
		if _, err := tx.GetSession(ctx, b.session.ID); err != nil {
			t.Errorf("B's session: %v", err)
		}
		return nil
	})
}
