package sqlstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

type loginFast interface {
	GetLinkedUser(ctx context.Context, tenantID, connectionID, subject string) (*gatehouse.FederatedIdentity, *gatehouse.User, error)
	ListUserMembershipRefs(ctx context.Context, tenantID, userID string) ([]*gatehouse.Membership, map[string]string, error)
	CreateJITUser(ctx context.Context, u *gatehouse.User, link *gatehouse.FederatedIdentity, ms []*gatehouse.Membership) error
	CreateLoginSession(ctx context.Context, s *gatehouse.Session) error
	ConnectionVersion(ctx context.Context, id string) (string, bool, time.Time, time.Time, error)
	AppendAudits(ctx context.Context, events []*gatehouse.AuditEvent) error
	FirstLoginProbe(ctx context.Context, tenantID, connectionID, email, username, group string) (*gatehouse.FirstLoginFacts, error)
	LinkOrFirstLoginProbe(ctx context.Context, tenantID, connectionID, subject, email, username, group string) (*gatehouse.FederatedIdentity, *gatehouse.User, *gatehouse.FirstLoginFacts, error)
}

// TestLoginFastPaths: each fast path of the login transaction against the
// portable methods it replaces, on both engines.
func TestLoginFastPaths(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			var err error
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			c := &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "Okta", Enabled: true}
			groups := []*gatehouse.Group{{Name: "Everyone"}, {Name: "Staff"}}
			update := func(fn func(tx gatehouse.Tx, fast loginFast) error) error {
				return s.Update(ctx, func(tx gatehouse.Tx) error { return fn(tx, tx.(loginFast)) })
			}
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, te); err != nil {
					return err
				}
				c.TenantID = te.ID
				for _, g := range groups {
					g.TenantID = te.ID
					if err := tx.CreateGroup(ctx, g); err != nil {
						return err
					}
				}
				return tx.CreateConnection(ctx, c)
			}))
			now := time.Now()
			newUser := func(email, username string) (*gatehouse.User, *gatehouse.FederatedIdentity, []*gatehouse.Membership) {
				u := &gatehouse.User{ID: gatehouse.NewID("usr"), TenantID: te.ID, Email: email, Username: username, Source: gatehouse.SourceJIT, LastLoginAt: &now}
				link := &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c.ID, Subject: "sub-" + username, UserID: u.ID, LastLoginAt: &now}
				var ms []*gatehouse.Membership
				for _, g := range groups {
					ms = append(ms, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: "connection:" + c.ID})
				}
				return u, link, ms
			}

			// CreateJITUser writes what CreateUser, CreateIdentity and
			// AddMembership would; GetLinkedUser and
			// ListUserMembershipRefs read it back as GetIdentity, GetUser
			// and ListUserMemberships do.
			u, link, ms := newUser("ana@acme.com", "ana")
			must(t, update(func(tx gatehouse.Tx, fast loginFast) error { return fast.CreateJITUser(ctx, u, link, ms) }))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				fast := tx.(loginFast)
				gotLink, gotUser, err := fast.GetLinkedUser(ctx, te.ID, c.ID, "sub-ana")
				if err != nil {
					return err
				}
				wantLink, err := tx.GetIdentity(ctx, te.ID, c.ID, "sub-ana")
				if err != nil {
					return err
				}
				wantUser, err := tx.GetUser(ctx, te.ID, u.ID)
				if err != nil {
					return err
				}
				wantUser.Groups = nil // GetLinkedUser does not fill them
				if d := cmp.Diff(wantLink, gotLink); d != "" {
					t.Errorf("link (-portable +fast):\n%s", d)
				}
				if d := cmp.Diff(wantUser, gotUser); d != "" {
					t.Errorf("user (-portable +fast):\n%s", d)
				}
				gotMs, names, err := fast.ListUserMembershipRefs(ctx, te.ID, u.ID)
				if err != nil {
					return err
				}
				wantMs, err := tx.ListUserMemberships(ctx, te.ID, u.ID)
				if err != nil {
					return err
				}
				if d := cmp.Diff(wantMs, gotMs); d != "" || len(gotMs) != 2 {
					t.Errorf("memberships (-portable +fast):\n%s", d)
				}
				for _, g := range groups {
					if names[g.ID] != g.Name {
						t.Errorf("names %v", names)
					}
				}
				if _, _, err := fast.GetLinkedUser(ctx, te.ID, c.ID, "nobody"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("unknown subject: %v", err)
				}
				return nil
			}))

			// A taken username leaves the transaction as it was: no
			// second link, no memberships; the same call with another
			// username succeeds.
			bo, boLink, boMs := newUser("bo@acme.com", "ANA")
			err = update(func(tx gatehouse.Tx, fast loginFast) error { return fast.CreateJITUser(ctx, bo, boLink, boMs) })
			if !gatehouse.IsCode(err, gatehouse.ECONFLICT) || gatehouse.ErrorField(err) != "username" {
				t.Fatalf("taken username: %v", err)
			}
			must(t, update(func(tx gatehouse.Tx, fast loginFast) error {
				// PostgreSQL's first, savepoint-less run fails here and
				// runs again (guardStmt): return, don't assert.
				if err := fast.CreateJITUser(ctx, bo, boLink, boMs); !gatehouse.IsCode(err, gatehouse.ECONFLICT) {
					return fmt.Errorf("taken username: %v", err)
				}
				if _, err := tx.GetIdentity(ctx, te.ID, c.ID, "sub-ANA"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("link of a refused user: %v", err)
				}
				bo.Username = "bo"
				return fast.CreateJITUser(ctx, bo, boLink, boMs)
			}))

			// A link whose user became a tombstone (DeleteUser removes
			// the links too; a race can still show this) reads with no
			// user.
			_, err = s.DB().ExecContext(ctx, `UPDATE users SET deleted_at = $1 WHERE id = $2`, now.UnixMicro(), bo.ID)
			must(t, err)
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				l, gone, err := tx.(loginFast).GetLinkedUser(ctx, te.ID, c.ID, "sub-ANA")
				if err != nil || l.UserID != bo.ID || gone != nil {
					t.Errorf("link of a tombstone: %+v %+v %v", l, gone, err)
				}
				return nil
			}))

			// FirstLoginProbe answers as GetUserByEmail (a live user with
			// its groups, a tombstone, none), UsernameTaken (tombstones
			// keep theirs; folded; empty is free) and "the connection has
			// a SCIM token" (first none, then one of another connection,
			// then one of this connection).
			// flags is FirstLoginProbe's answer about SCIM tokens and webhooks.
			flags := func(wantSCIM, wantHooks bool) {
				t.Helper()
				must(t, s.View(ctx, func(tx gatehouse.Tx) error {
					f, err := tx.(loginFast).FirstLoginProbe(ctx, te.ID, c.ID, "ana@acme.com", "ana", "")
					if err == nil && (f.SCIMTokens != wantSCIM || f.Webhooks != wantHooks) {
						t.Errorf("SCIM tokens of the connection %v, enabled webhooks %v; want %v, %v", f.SCIMTokens, f.Webhooks, wantSCIM, wantHooks)
					}
					return err
				}))
			}
			probeSCIM := func(want bool) { t.Helper(); flags(want, false) }
			probeSCIM(false)
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.CreateSCIMToken(ctx, &gatehouse.SCIMToken{TenantID: te.ID, Name: "other", ConnectionID: "", Hash: []byte("h1")})
			}))
			probeSCIM(false)
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.CreateSCIMToken(ctx, &gatehouse.SCIMToken{TenantID: te.ID, Name: "okta", ConnectionID: c.ID, Hash: []byte("h2")})
			}))
			probeSCIM(true)
			// The webhook answer: none, a disabled one, an enabled one.
			probeHooks := func(want bool) { t.Helper(); flags(true, want) }
			probeHooks(false)
			hook := &gatehouse.Webhook{TenantID: te.ID, URL: "https://hooks.example/in", Events: []string{"*"}, Secret: []byte("sealed")}
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateWebhook(ctx, hook) }))
			probeHooks(false)
			hook.Enabled = true
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateWebhook(ctx, hook) }))
			probeHooks(true)
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				fast := tx.(loginFast)
				for _, tc := range []struct {
					email, username string
					user            string // ID, "" for none
					taken           bool
				}{
					{"ANA@acme.com", "nobody", u.ID, false},
					{"bo@acme.com", "Ana", bo.ID, true},
					{"nobody@acme.com", "BO", "", true},
					{"nobody@acme.com", "carla", "", false},
					{"nobody@acme.com", "", "", false},
					{"", "ana", "", true},
				} {
					f, err := fast.FirstLoginProbe(ctx, te.ID, c.ID, tc.email, tc.username, "")
					if err != nil {
						return err
					}
					got, taken := f.User, f.UsernameTaken
					want, werr := tx.GetUserByEmail(ctx, te.ID, tc.email)
					wantTaken, terr := tx.UsernameTaken(ctx, te.ID, tc.username)
					if terr != nil {
						return terr
					}
					if taken != tc.taken || wantTaken != tc.taken {
						t.Errorf("%+v: taken %v, UsernameTaken %v", tc, taken, wantTaken)
					}
					if tc.user == "" {
						if got != nil || !gatehouse.IsCode(werr, gatehouse.ENOTFOUND) {
							t.Errorf("%+v: %+v, GetUserByEmail %v", tc, got, werr)
						}
						continue
					}
					if werr != nil {
						return werr
					}
					if d := cmp.Diff(want, got); d != "" || got.ID != tc.user {
						t.Errorf("%+v: user (-portable +fast):\n%s", tc, d)
					}
				}
				// Another tenant's users and groups are not seen.
				if f, err := fast.FirstLoginProbe(ctx, "ten_other", c.ID, "ana@acme.com", "ana", "Everyone"); err != nil || f.User != nil || f.UsernameTaken || f.SCIMTokens || f.Webhooks || f.Group != nil {
					t.Errorf("other tenant: %+v %v", f, err)
				}
				// The group answers as GetGroupRefByName (folded; none for
				// an unknown or empty name).
				for _, name := range []string{"Everyone", "STAFF", "nobody", ""} {
					f, err := fast.FirstLoginProbe(ctx, te.ID, c.ID, "nobody@acme.com", "carla", name)
					if err != nil {
						return err
					}
					want, werr := tx.(interface {
						GetGroupRefByName(ctx context.Context, tenantID, name string) (*gatehouse.Group, error)
					}).GetGroupRefByName(ctx, te.ID, name)
					switch {
					case gatehouse.IsCode(werr, gatehouse.ENOTFOUND):
						if f.Group != nil {
							t.Errorf("group %q: %+v, want none", name, f.Group)
						}
					case werr != nil:
						return werr
					case f.Group == nil || f.Group.ID != want.ID || f.Group.Name != want.Name || f.Group.TenantID != te.ID:
						t.Errorf("group %q: %+v, want %+v", name, f.Group, want)
					}
				}
				return nil
			}))

			// A membership repeated in CreateJITUser's list is one row.
			cy, cyLink, cyMs := newUser("cy@acme.com", "cy")
			cyMs = append(cyMs, &gatehouse.Membership{TenantID: te.ID, GroupID: groups[0].ID, UserID: cy.ID, ManagedBy: "connection:" + c.ID})
			must(t, update(func(tx gatehouse.Tx, fast loginFast) error { return fast.CreateJITUser(ctx, cy, cyLink, cyMs) }))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				got, err := tx.ListUserMemberships(ctx, te.ID, cy.ID)
				if err == nil && len(got) != 2 {
					t.Errorf("memberships of cy: %d, want 2", len(got))
				}
				return err
			}))
			// A group gone since the plan read it: ENOTFOUND, nothing written.
			dy, dyLink, _ := newUser("dy@acme.com", "dy")
			err = update(func(tx gatehouse.Tx, fast loginFast) error {
				return fast.CreateJITUser(ctx, dy, dyLink, []*gatehouse.Membership{{TenantID: te.ID, GroupID: "grp_gone", UserID: dy.ID, ManagedBy: "connection:" + c.ID}})
			})
			if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) || !strings.Contains(err.Error(), "Group not found") {
				t.Errorf("membership of a missing group: %v", err)
			}
			// A connection gone since the login began: the link's foreign
			// key, ENOTFOUND naming the connection, nothing written.
			ey, eyLink, eyMs := newUser("ey@acme.com", "ey")
			eyLink.ConnectionID = "con_gone"
			err = update(func(tx gatehouse.Tx, fast loginFast) error { return fast.CreateJITUser(ctx, ey, eyLink, eyMs) })
			if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) || !strings.Contains(err.Error(), "Connection not found") {
				t.Errorf("link to a missing connection: %v", err)
			}
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				for _, email := range []string{"dy@acme.com", "ey@acme.com"} {
					if _, err := tx.GetUserByEmail(ctx, te.ID, email); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
						t.Errorf("user of a failed JIT creation: %v", err)
					}
				}
				return nil
			}))

			// CreateLoginSession stores what CreateSession does.
			sess := &gatehouse.Session{ID: "digest-1", TenantID: te.ID, UserID: u.ID, ConnectionID: c.ID,
				AuthTime: now, IdleExpiry: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)}
			must(t, update(func(tx gatehouse.Tx, fast loginFast) error { return fast.CreateLoginSession(ctx, sess) }))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				got, err := tx.GetSession(ctx, "digest-1")
				if err != nil {
					return err
				}
				if d := cmp.Diff(sess, got); d != "" {
					t.Errorf("session (-written +read):\n%s", d)
				}
				return nil
			}))

			// AppendAudits stores what AppendAudit does, in order.
			evs := []*gatehouse.AuditEvent{
				{TenantID: te.ID, ActorType: "connection", ActorID: c.ID, Action: "user.jit_created", TargetType: "user", TargetID: u.ID,
					Details: map[string]any{"email": "ana@acme.com", "groups": []any{"Everyone"}}},
				{TenantID: te.ID, ActorType: "connection", ActorID: c.ID, Action: "login.succeeded", TargetType: "user", TargetID: u.ID, RequestID: "req-1"},
			}
			must(t, update(func(tx gatehouse.Tx, fast loginFast) error { return fast.AppendAudits(ctx, evs) }))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				for _, want := range evs {
					got, _, err := tx.ListAudit(ctx, te.ID, gatehouse.AuditFilter{Action: want.Action}, gatehouse.Page{})
					if err != nil {
						return err
					}
					if len(got) != 1 {
						t.Fatalf("%s: %d events", want.Action, len(got))
					}
					if d := cmp.Diff(want, got[0]); d != "" {
						t.Errorf("%s (-appended +read):\n%s", want.Action, d)
					}
				}
				return nil
			}))
			if err := update(func(tx gatehouse.Tx, fast loginFast) error {
				return fast.AppendAudits(ctx, []*gatehouse.AuditEvent{evs[0], {TenantID: te.ID}})
			}); gatehouse.ErrorField(err) != "action" {
				t.Errorf("an event without action: %v", err)
			}

			// ConnectionVersion follows updates, disabling and deletion.
			must(t, update(func(tx gatehouse.Tx, fast loginFast) error {
				tid, enabled, cu, tu, err := fast.ConnectionVersion(ctx, c.ID)
				if err != nil || tid != te.ID || !enabled || !cu.Equal(c.UpdatedAt) || !tu.Equal(te.UpdatedAt) {
					t.Errorf("version: %s %v %s %s %v", tid, enabled, cu, tu, err)
				}
				gen := s.CatalogGeneration()
				c.Enabled = false
				if err := tx.UpdateConnection(ctx, c); err != nil {
					return err
				}
				if s.CatalogGeneration() == gen {
					t.Error("an update did not change the catalog generation")
				}
				if _, enabled, _, _, err = fast.ConnectionVersion(ctx, c.ID); err != nil || enabled {
					t.Errorf("disabled: %v %v", enabled, err)
				}
				if err := tx.DeleteConnection(ctx, te.ID, c.ID); err != nil {
					return err
				}
				if _, _, _, _, err := fast.ConnectionVersion(ctx, c.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("deleted: %v", err)
				}
				return nil
			}))
		})
	}
}

// TestLinkOrFirstLoginProbe: LinkOrFirstLoginProbe answers as
// GetLinkedUser when the link exists (and then reads no facts) and as
// FirstLoginProbe when it does not, on both engines. Each case has a tenant
// of its own with a connection and the group "Everyone".
func TestLinkOrFirstLoginProbe(t *testing.T) {
	type env struct {
		t     *testing.T
		ctx   context.Context
		s     *sqlstore.Store
		te    *gatehouse.Tenant
		c     *gatehouse.Connection
		group *gatehouse.Group
	}
	update := func(e *env, fn func(tx gatehouse.Tx) error) {
		e.t.Helper()
		if err := e.s.Update(e.ctx, fn); err != nil {
			e.t.Fatal(err)
		}
	}
	user := func(e *env, email, username string) *gatehouse.User {
		e.t.Helper()
		u := &gatehouse.User{TenantID: e.te.ID, Email: email, Username: username, Source: gatehouse.SourceAdmin}
		update(e, func(tx gatehouse.Tx) error { return tx.CreateUser(e.ctx, u) })
		return u
	}
	link := func(e *env, u *gatehouse.User, subject string) {
		e.t.Helper()
		update(e, func(tx gatehouse.Tx) error {
			return tx.CreateIdentity(e.ctx, &gatehouse.FederatedIdentity{TenantID: e.te.ID, ConnectionID: e.c.ID, Subject: subject, UserID: u.ID})
		})
	}
	// tombstone marks u deleted, keeping its links (DeleteUser removes
	// them; a race can still show a link to a tombstone).
	tombstone := func(e *env, u *gatehouse.User) {
		e.t.Helper()
		if _, err := e.s.DB().ExecContext(e.ctx, `UPDATE users SET deleted_at = $1 WHERE id = $2`, time.Now().UnixMicro(), u.ID); err != nil {
			e.t.Fatal(err)
		}
	}
	scimToken := func(e *env, connectionID string) {
		e.t.Helper()
		update(e, func(tx gatehouse.Tx) error {
			return tx.CreateSCIMToken(e.ctx, &gatehouse.SCIMToken{TenantID: e.te.ID, Name: "tok" + connectionID, ConnectionID: connectionID, Hash: []byte(gatehouse.NewID("h"))})
		})
	}
	webhook := func(e *env, enabled bool) {
		e.t.Helper()
		update(e, func(tx gatehouse.Tx) error {
			return tx.CreateWebhook(e.ctx, &gatehouse.Webhook{TenantID: e.te.ID, URL: "https://hooks.example/in", Events: []string{"*"}, Enabled: enabled, Secret: []byte("sealed")})
		})
	}
	// everything makes every probe fact true for ana@acme.com, "ana" and
	// "Everyone": a returning user's answer must still carry none.
	everything := func(e *env) {
		user(e, "ana@acme.com", "ana")
		scimToken(e, e.c.ID)
		webhook(e, true)
	}
	tests := []struct {
		name  string
		setup func(e *env)
		// The arguments; subject "sub-ana" unless set.
		subject, email, username, group string
		// wantLink: the link is found (its user is wantUser's email, ""
		// for none). Else the facts: wantUser the email of facts.User,
		// wantGroups its groups, and the flags.
		wantLink             bool
		wantUser             string
		wantGroups           []string
		wantTaken, wantSCIM  bool
		wantHooks            bool
		wantGroup            string
		wantDeletedFactsUser bool
	}{
		{
			name: "link present, live user",
			setup: func(e *env) {
				everything(e)
				link(e, user(e, "bo@acme.com", "bo"), "sub-ana")
			},
			email: "ana@acme.com", username: "ana", group: "Everyone",
			wantLink: true, wantUser: "bo@acme.com",
		},
		{
			name: "link present, deleted user",
			setup: func(e *env) {
				everything(e)
				bo := user(e, "bo@acme.com", "bo")
				link(e, bo, "sub-ana")
				tombstone(e, bo)
			},
			email: "ana@acme.com", username: "ana", group: "Everyone",
			wantLink: true,
		},
		{
			name: "no link, a user with the email (groups filled)",
			setup: func(e *env) {
				ana := user(e, "ana@acme.com", "ana")
				update(e, func(tx gatehouse.Tx) error {
					return tx.AddMembership(e.ctx, &gatehouse.Membership{TenantID: e.te.ID, GroupID: e.group.ID, UserID: ana.ID, ManagedBy: "admin"})
				})
				// A link of another subject is no link.
				link(e, ana, "sub-other")
			},
			email: "ANA@acme.com ", username: "carla",
			wantUser: "ana@acme.com", wantGroups: []string{"Everyone"},
		},
		{
			name:  "no link, the email's user is a tombstone",
			setup: func(e *env) { tombstone(e, user(e, "ana@acme.com", "ana")) },
			email: "ana@acme.com", username: "carla",
			wantUser: "ana@acme.com", wantGroups: []string{}, wantDeletedFactsUser: true,
		},
		{
			name:  "no link, no user with the email",
			setup: func(e *env) { user(e, "bo@acme.com", "bo") },
			email: "ana@acme.com", username: "carla",
		},
		{
			name:  "no link, empty email and username",
			setup: func(e *env) { user(e, "bo@acme.com", "bo") },
		},
		{
			name:  "username taken (folded)",
			setup: func(e *env) { user(e, "bo@acme.com", "ana") },
			email: "ana@acme.com", username: "ANA",
			wantTaken: true,
		},
		{
			name:  "SCIM token of another connection only",
			setup: func(e *env) { scimToken(e, "") },
			email: "ana@acme.com", username: "ana",
		},
		{
			name:  "SCIM token of the connection",
			setup: func(e *env) { scimToken(e, ""); scimToken(e, e.c.ID) },
			email: "ana@acme.com", username: "ana",
			wantSCIM: true,
		},
		{
			name:  "disabled webhook",
			setup: func(e *env) { webhook(e, false) },
			email: "ana@acme.com", username: "ana",
		},
		{
			name:  "enabled webhook",
			setup: func(e *env) { webhook(e, false); webhook(e, true) },
			email: "ana@acme.com", username: "ana",
			wantHooks: true,
		},
		{
			name:  "default group present (folded)",
			email: "ana@acme.com", username: "ana", group: "EVERYONE",
			wantGroup: "Everyone",
		},
		{
			name:  "default group absent",
			email: "ana@acme.com", username: "ana", group: "Ghost",
		},
		{
			name:    "everything, no link",
			setup:   everything,
			subject: "sub-new",
			email:   "ana@acme.com", username: "ana", group: "Everyone",
			wantUser: "ana@acme.com", wantGroups: []string{}, wantTaken: true, wantSCIM: true, wantHooks: true, wantGroup: "Everyone",
		},
	}
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			// Another tenant, set up with the first case, has the
			// subjects linked, the email's user, a SCIM token and an
			// enabled webhook: no case may see them.
			other := &env{t: t, ctx: ctx, s: s}
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					e := &env{t: t, ctx: ctx, s: s}
					for _, e := range []*env{other, e} {
						if e == other && i > 0 {
							continue
						}
						e.te = &gatehouse.Tenant{Slug: fmt.Sprintf("t%d-%t", i, e == other), Name: "T"}
						e.c = &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "Okta", Enabled: true}
						e.group = &gatehouse.Group{Name: "Everyone"}
						update(e, func(tx gatehouse.Tx) error {
							if err := tx.CreateTenant(ctx, e.te); err != nil {
								return err
							}
							e.c.TenantID, e.group.TenantID = e.te.ID, e.te.ID
							if err := tx.CreateGroup(ctx, e.group); err != nil {
								return err
							}
							return tx.CreateConnection(ctx, e.c)
						})
					}
					if i == 0 {
						other.t = t
						everything(other)
						link(other, user(other, "carla@acme.com", "carla"), "sub-ana")
						link(other, user(other, "dee@acme.com", "dee"), "sub-new")
					}
					if tc.setup != nil {
						tc.setup(e)
					}
					subject := tc.subject
					if subject == "" {
						subject = "sub-ana"
					}
					if err := s.View(ctx, func(tx gatehouse.Tx) error {
						fast := tx.(loginFast)
						gotLink, gotUser, facts, err := fast.LinkOrFirstLoginProbe(ctx, e.te.ID, e.c.ID, subject, tc.email, tc.username, tc.group)
						if err != nil {
							return err
						}
						wantLink, wantUser, werr := fast.GetLinkedUser(ctx, e.te.ID, e.c.ID, subject)
						if tc.wantLink {
							if werr != nil {
								return werr
							}
							if gotLink == nil || facts != nil {
								t.Fatalf("link %+v, facts %+v; want the link and no facts", gotLink, facts)
							}
							if d := cmp.Diff(wantLink, gotLink); d != "" {
								t.Errorf("link (-GetLinkedUser +fast):\n%s", d)
							}
							if d := cmp.Diff(wantUser, gotUser); d != "" {
								t.Errorf("user (-GetLinkedUser +fast):\n%s", d)
							}
							if gotUser != nil && gotUser.Email != tc.wantUser || gotUser == nil && tc.wantUser != "" {
								t.Errorf("user %+v, want %q", gotUser, tc.wantUser)
							}
							return nil
						}
						if !gatehouse.IsCode(werr, gatehouse.ENOTFOUND) {
							t.Fatalf("GetLinkedUser: %v; the case wants no link", werr)
						}
						if gotLink != nil || gotUser != nil || facts == nil {
							t.Fatalf("link %+v, user %+v, facts %+v; want facts only", gotLink, gotUser, facts)
						}
						want, err := fast.FirstLoginProbe(ctx, e.te.ID, e.c.ID, tc.email, tc.username, tc.group)
						if err != nil {
							return err
						}
						if d := cmp.Diff(want, facts); d != "" {
							t.Errorf("facts (-FirstLoginProbe +fast):\n%s", d)
						}
						switch u := facts.User; {
						case tc.wantUser == "" && u != nil, tc.wantUser != "" && (u == nil || u.Email != tc.wantUser):
							t.Errorf("user %+v, want %q", u, tc.wantUser)
						case u != nil && (!slices.Equal(u.Groups, tc.wantGroups) || u.Groups == nil || (u.DeletedAt != nil) != tc.wantDeletedFactsUser):
							t.Errorf("user's groups %#v, deleted %v", u.Groups, u.DeletedAt)
						}
						if facts.UsernameTaken != tc.wantTaken || facts.SCIMTokens != tc.wantSCIM || facts.Webhooks != tc.wantHooks {
							t.Errorf("taken %v, SCIM tokens %v, webhooks %v; want %v, %v, %v",
								facts.UsernameTaken, facts.SCIMTokens, facts.Webhooks, tc.wantTaken, tc.wantSCIM, tc.wantHooks)
						}
						switch g := facts.Group; {
						case tc.wantGroup == "" && g != nil:
							t.Errorf("group %+v, want none", g)
						case tc.wantGroup != "" && (g == nil || g.ID != e.group.ID || g.Name != tc.wantGroup || g.TenantID != e.te.ID):
							t.Errorf("group %+v, want %s", g, tc.wantGroup)
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// BenchmarkFirstLook: a login's first look, GetLinkedUser (then
// FirstLoginProbe on a first login) against LinkOrFirstLoginProbe, each
// in a read transaction of its own; -count alternates them.
//
//	go test ./store/sqlstore -run '^$' -bench FirstLook -benchtime 5000x -count 6
func BenchmarkFirstLook(b *testing.B) {
	for _, engine := range testdb.Engines {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			s := openStore(b, engine)
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			c := &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "Okta", Enabled: true}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, te); err != nil {
					return err
				}
				c.TenantID = te.ID
				if err := tx.CreateConnection(ctx, c); err != nil {
					return err
				}
				if err := tx.CreateGroup(ctx, &gatehouse.Group{TenantID: te.ID, Name: "Everyone"}); err != nil {
					return err
				}
				if err := tx.CreateWebhook(ctx, &gatehouse.Webhook{TenantID: te.ID, URL: "https://hooks.example/in", Events: []string{"*"}, Enabled: true, Secret: []byte("sealed")}); err != nil {
					return err
				}
				for i := range 200 {
					u := &gatehouse.User{TenantID: te.ID, Email: fmt.Sprintf("u%d@acme.com", i), Username: fmt.Sprintf("u%d", i), Source: gatehouse.SourceJIT}
					if err := tx.CreateUser(ctx, u); err != nil {
						return err
					}
					if err := tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c.ID, Subject: fmt.Sprintf("sub-%d", i), UserID: u.ID}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			run := func(b *testing.B, subject string, look func(fast loginFast, subject, email, username string) error) {
				i := 0
				cpu0 := testdb.ProcessCPU()
				for b.Loop() {
					i++
					email, username := fmt.Sprintf("new%d@acme.com", i), fmt.Sprintf("new%d", i)
					if err := s.View(ctx, func(tx gatehouse.Tx) error { return look(tx.(loginFast), subject, email, username) }); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((testdb.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			}
			two := func(fast loginFast, subject, email, username string) error {
				_, _, err := fast.GetLinkedUser(ctx, te.ID, c.ID, subject)
				if err == nil {
					return nil
				}
				if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					return err
				}
				_, err = fast.FirstLoginProbe(ctx, te.ID, c.ID, email, username, "Everyone")
				return err
			}
			one := func(fast loginFast, subject, email, username string) error {
				_, _, _, err := fast.LinkOrFirstLoginProbe(ctx, te.ID, c.ID, subject, email, username, "Everyone")
				return err
			}
			for _, kind := range []struct{ name, subject string }{{"returning", "sub-17"}, {"first", "sub-new"}} {
				b.Run(kind.name+"/GetLinkedUser+FirstLoginProbe", func(b *testing.B) { run(b, kind.subject, two) })
				b.Run(kind.name+"/LinkOrFirstLoginProbe", func(b *testing.B) { run(b, kind.subject, one) })
			}
		})
	}
}
