package provision_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/mapping"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// fixture is one tenant "acme" (verified domain acme.com) with an OIDC
// connection and the groups Everyone, Engineering, Sales, Admins.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	s      *sqlstore.Store
	r      *provision.Resolver
	tenant *gatehouse.Tenant
	conn   *gatehouse.Connection
	groups map[string]*gatehouse.Group
}

func openStore(t testing.TB, engine string) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, testdb.URL(t, engine), sqlstore.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", engine, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newFixture(t testing.TB, s *sqlstore.Store) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), s: s, groups: map[string]*gatehouse.Group{}}
	var st gatehouse.Store = s
	if _, ok := portableStores.Load(s); ok {
		st = portableStore{s}
	}
	f.r = provision.New(st, provision.Options{Clock: fixedClock{t0}})
	slug := strings.ToLower(gatehouse.NewID("t")[len("t_")+14:])
	f.tenant = &gatehouse.Tenant{ID: gatehouse.NewID("ten"), Slug: "acme" + slug, Name: "Acme", Domains: []string{"acme" + slug + ".com"}}
	f.conn = &gatehouse.Connection{ID: gatehouse.NewID("con"), TenantID: f.tenant.ID, Type: gatehouse.ConnOIDC,
		Name: "Okta", Enabled: true, JIT: gatehouse.DefaultJITPolicy()}
	f.update(func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(f.ctx, f.tenant); err != nil {
			return err
		}
		for _, name := range []string{"Everyone", "Engineering", "Sales", "Admins"} {
			g := &gatehouse.Group{ID: gatehouse.NewID("grp"), TenantID: f.tenant.ID, Name: name, Source: gatehouse.SourceAdmin}
			if err := tx.CreateGroup(f.ctx, g); err != nil {
				return err
			}
			f.groups[name] = g
		}
		// The outbox feeds webhooks and is written only for a tenant
		// that has one enabled (sqlstore AppendOutbox).
		if err := tx.CreateWebhook(f.ctx, &gatehouse.Webhook{TenantID: f.tenant.ID, URL: "https://hooks.example/in",
			Events: []string{"*"}, Enabled: true, Secret: []byte("sealed")}); err != nil {
			return err
		}
		return tx.CreateConnection(f.ctx, f.conn)
	})
	return f
}

// domain is the tenant's verified domain.
func (f *fixture) domain() string { return f.tenant.Domains[0] }

// email returns local@<tenant domain>.
func (f *fixture) email(local string) string { return local + "@" + f.domain() }

func (f *fixture) update(fn func(tx gatehouse.Tx) error) {
	f.t.Helper()
	if err := f.s.Update(f.ctx, fn); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) view(fn func(tx gatehouse.Tx) error) {
	f.t.Helper()
	if err := f.s.View(f.ctx, fn); err != nil {
		f.t.Fatal(err)
	}
}

// user creates a user directly (as an admin or SCIM would).
func (f *fixture) user(email, username, source, status string) *gatehouse.User {
	u := &gatehouse.User{TenantID: f.tenant.ID, Email: email, Username: username, Source: source, Status: status}
	f.update(func(tx gatehouse.Tx) error { return tx.CreateUser(f.ctx, u) })
	return u
}

func (f *fixture) link(u *gatehouse.User, subject string) {
	f.update(func(tx gatehouse.Tx) error {
		return tx.CreateIdentity(f.ctx, &gatehouse.FederatedIdentity{TenantID: f.tenant.ID,
			ConnectionID: f.conn.ID, Subject: subject, UserID: u.ID, CreatedAt: t0})
	})
}

func (f *fixture) member(u *gatehouse.User, group, managedBy string) {
	f.update(func(tx gatehouse.Tx) error {
		return tx.AddMembership(f.ctx, &gatehouse.Membership{TenantID: f.tenant.ID,
			GroupID: f.groups[group].ID, UserID: u.ID, ManagedBy: managedBy})
	})
}

// memberships returns "group/manager" of a user's memberships, sorted.
func (f *fixture) memberships(userID string) []string {
	var out []string
	f.view(func(tx gatehouse.Tx) error {
		ms, err := tx.ListUserMemberships(f.ctx, f.tenant.ID, userID)
		for _, m := range ms {
			for name, g := range f.groups {
				if g.ID == m.GroupID {
					mb := m.ManagedBy
					mb = strings.Replace(mb, f.conn.ID, "C", 1)
					out = append(out, name+"/"+mb)
				}
			}
		}
		return err
	})
	slices.Sort(out)
	return out
}

// counts returns the rows of the tables a resolution writes, for this
// tenant.
type counts struct{ users, links, memberships, audit, outbox int }

func (f *fixture) counts() counts {
	f.t.Helper()
	var c counts
	for _, q := range []struct {
		table string
		dst   *int
	}{{"users", &c.users}, {"federated_identities", &c.links}, {"memberships", &c.memberships},
		{"audit_events", &c.audit}, {"outbox", &c.outbox}} {
		if err := f.s.DB().QueryRowContext(f.ctx, "SELECT count(*) FROM "+q.table+" WHERE tenant_id = $1", f.tenant.ID).Scan(q.dst); err != nil {
			f.t.Fatalf("count %s: %v", q.table, err)
		}
	}
	return c
}

// audit returns the actions of the tenant's audit events, oldest first.
func (f *fixture) audit() []string {
	var out []string
	f.view(func(tx gatehouse.Tx) error {
		evs, _, err := tx.ListAudit(f.ctx, f.tenant.ID, gatehouse.AuditFilter{}, gatehouse.Page{Limit: 1000})
		for _, e := range evs {
			out = append(out, e.Action)
		}
		return err
	})
	slices.Sort(out)
	return out
}

func (f *fixture) lastAudit(action string) *gatehouse.AuditEvent {
	var ev *gatehouse.AuditEvent
	f.view(func(tx gatehouse.Tx) error {
		evs, _, err := tx.ListAudit(f.ctx, f.tenant.ID, gatehouse.AuditFilter{Action: action}, gatehouse.Page{Limit: 1})
		if len(evs) > 0 {
			ev = evs[0]
		}
		return err
	})
	return ev
}

func (f *fixture) outboxTypes() []string {
	var out []string
	rows, err := f.s.DB().QueryContext(f.ctx, "SELECT type FROM outbox WHERE tenant_id = $1", f.tenant.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (f *fixture) identity(subject, email string) *gatehouse.Identity {
	return &gatehouse.Identity{TenantID: f.tenant.ID, ConnectionID: f.conn.ID, Issuer: "https://idp.example",
		Subject: subject, Email: email}
}

func (f *fixture) resolve(id *gatehouse.Identity, mode provision.Mode) (*provision.Result, error) {
	return f.r.Resolve(f.ctx, f.tenant, f.conn, id, mode)
}

func bptr(b bool) *bool { return &b }

func forEngines(t *testing.T, fn func(t *testing.T, s *sqlstore.Store)) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			fn(t, openStore(t, engine))
		})
	}
}

// forEnginesBothPaths is forEngines run twice per engine: once with the
// store's fast paths (sqlstore's GetLinkedUser, CreateJITUser, ...) and
// once on the portable path of any gatehouse.Store, whose resolutions the
// fast ones must equal.
func forEnginesBothPaths(t *testing.T, fn func(t *testing.T, s *sqlstore.Store)) {
	for _, engine := range testdb.Engines {
		for _, path := range []string{"fast", "portable"} {
			t.Run(engine+"/"+path, func(t *testing.T) {
				s := openStore(t, engine)
				if path == "portable" {
					portableStores.Store(s, true)
				}
				fn(t, s)
			})
		}
	}
}

// portableStores are the stores whose fixtures resolve through
// portableStore.
var portableStores sync.Map

// portableStore hides the optional methods of sqlstore's transactions:
// the resolver sees gatehouse.Tx alone.
type portableStore struct{ *sqlstore.Store }

type portableTx struct{ gatehouse.Tx }

func (p portableStore) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return p.Store.Update(ctx, func(tx gatehouse.Tx) error { return fn(portableTx{tx}) })
}

func (p portableStore) View(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return p.Store.View(ctx, func(tx gatehouse.Tx) error { return fn(portableTx{tx}) })
}

// TestResolve covers every branch of issue 4 on both engines. Each case
// runs in a tenant of its own in one database per engine.
func TestResolve(t *testing.T) {
	type tc struct {
		name string
		// policy adjusts the connection's JIT policy.
		policy func(f *fixture, p *gatehouse.JITPolicy)
		// setup writes what exists before the login and may adjust id.
		setup func(f *fixture, id *gatehouse.Identity)
		// email's local part; "" for none. Full addresses pass as is.
		email    string
		verified *bool
		username string
		mode     provision.Mode
		// wantOutcome, or wantReason (with wantCode) on a refusal.
		wantOutcome string
		wantReason  string
		wantCode    string
		// wantWrites: the change in rows (users, links, memberships,
		// audit, outbox).
		wantWrites counts
		check      func(t *testing.T, f *fixture, res *provision.Result, err error)
	}
	anyDomain := func(f *fixture, p *gatehouse.JITPolicy) { p.AllowedDomains = &[]string{} }
	allowLink := func(f *fixture, p *gatehouse.JITPolicy) { p.LinkExistingByEmail = true }
	existingAna := func(f *fixture, id *gatehouse.Identity) {
		f.user(f.email("ana"), "ana", gatehouse.SourceAdmin, gatehouse.StatusActive)
	}
	refused := counts{audit: 1}
	tests := []tc{
		{
			// The outbox only feeds webhooks: without an enabled one no
			// event is written (the fast path does not even build it).
			name: "create: no outbox event without an enabled webhook", email: "ana",
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.update(func(tx gatehouse.Tx) error {
					hooks, err := tx.ListWebhooks(f.ctx, f.tenant.ID)
					for _, h := range hooks {
						h.Enabled = false
						if err == nil {
							err = tx.UpdateWebhook(f.ctx, h)
						}
					}
					return err
				})
			},
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2},
		},
		{
			// The store's fast path asks for the first default group with
			// the email; the others are looked up one by one.
			name: "create: a default group deleted since is skipped", email: "ana",
			policy:      func(f *fixture, p *gatehouse.JITPolicy) { p.DefaultGroups = []string{"Ghost", "Everyone", "Phantom"} },
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, memberships: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if !slices.Equal(res.Groups, []string{"Everyone"}) || !slices.Equal(res.User.Groups, []string{"Everyone"}) {
					t.Errorf("groups = %v / %v", res.Groups, res.User.Groups)
				}
				for _, g := range []string{"Ghost", "Phantom"} {
					if !slices.Contains(res.Explanation, fmt.Sprintf("Default group %q does not exist and is skipped.", g)) {
						t.Errorf("explanation %q lacks %s", res.Explanation, g)
					}
				}
			},
		},
		{
			name: "create: new user with email only", email: "ana",
			policy:      func(f *fixture, p *gatehouse.JITPolicy) { p.DefaultGroups = []string{"Everyone"} },
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, memberships: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				u := res.User
				if u.Username != "ana" || u.Source != gatehouse.SourceJIT || u.Status != gatehouse.StatusActive ||
					u.DisplayName != "" || u.GivenName != "" || u.FamilyName != "" {
					t.Errorf("user = %+v", u)
				}
				if !slices.Equal(res.Groups, []string{"Everyone"}) || !slices.Equal(u.Groups, []string{"Everyone"}) {
					t.Errorf("groups = %v / %v", res.Groups, u.Groups)
				}
				if got := f.memberships(u.ID); !slices.Equal(got, []string{"Everyone/connection:C:default"}) {
					t.Errorf("memberships = %v", got)
				}
				if got := f.audit(); !slices.Equal(got, []string{"login.succeeded", "user.jit_created"}) {
					t.Errorf("audit = %v", got)
				}
				if got := f.outboxTypes(); !slices.Equal(got, []string{"user.created"}) {
					t.Errorf("outbox = %v", got)
				}
				var stored *gatehouse.User
				var link *gatehouse.FederatedIdentity
				f.view(func(tx gatehouse.Tx) (err error) {
					if stored, err = tx.GetUser(f.ctx, f.tenant.ID, u.ID); err != nil {
						return err
					}
					link, err = tx.GetIdentity(f.ctx, f.tenant.ID, f.conn.ID, "sub-1")
					return err
				})
				if stored.LastLoginAt == nil || link.LastLoginAt == nil || link.UserID != u.ID {
					t.Errorf("last login not recorded: user %v link %+v", stored.LastLoginAt, link)
				}
			},
		},
		{
			name: "create: IdP names and username kept", email: "ana", username: "ana.lopez",
			setup: func(f *fixture, id *gatehouse.Identity) {
				id.DisplayName, id.GivenName, id.FamilyName = "Ana López", "Ana", "López"
			},
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				u := res.User
				if u.Username != "ana.lopez" || u.DisplayName != "Ana López" || u.GivenName != "Ana" || u.FamilyName != "López" {
					t.Errorf("user = %+v", u)
				}
			},
		},
		{
			name: "create: derived username made unique", email: "ana",
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.user("ana@elsewhere.org", "ana", gatehouse.SourceAdmin, gatehouse.StatusActive)
				f.user("ana2@elsewhere.org", "ANA2", gatehouse.SourceAdmin, gatehouse.StatusActive)
			},
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.User.Username != "ana3" {
					t.Errorf("username = %q, want ana3", res.User.Username)
				}
			},
		},
		{
			name: "create: IdP username taken falls back to a variant", email: "bo", username: "bob",
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.user("robert@elsewhere.org", "Bob", gatehouse.SourceAdmin, gatehouse.StatusActive)
			},
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.User.Username != "bob2" {
					t.Errorf("username = %q, want bob2", res.User.Username)
				}
			},
		},
		{
			name: "create: email trimmed", email: "  cy@DOMAIN ",
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if want := "cy@" + strings.ToUpper(f.domain()); res.User.Email != want {
					t.Errorf("email = %q, want %q", res.User.Email, want)
				}
			},
		},
		{
			name: "existing link: returning user", email: "ana",
			setup: func(f *fixture, id *gatehouse.Identity) {
				u := f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive)
				f.link(u, id.Subject)
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{audit: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.Updated || res.User.LastLoginAt == nil || !res.User.LastLoginAt.Equal(t0) {
					t.Errorf("result = %+v", res)
				}
				if got := f.audit(); !slices.Equal(got, []string{"login.succeeded"}) {
					t.Errorf("audit = %v", got)
				}
			},
		},
		{
			name: "existing link works without email", email: "",
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.link(f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive), id.Subject)
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{audit: 1},
		},
		{
			name: "link allowed: verified email, tenant domain", email: "ana", verified: bptr(true),
			policy: allowLink, setup: existingAna,
			wantOutcome: provision.OutcomeLinked, wantWrites: counts{links: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.User.Source != gatehouse.SourceAdmin || res.Identity.UserID != res.User.ID {
					t.Errorf("result = %+v", res)
				}
				if got := f.audit(); !slices.Equal(got, []string{"login.succeeded", "user.linked"}) {
					t.Errorf("audit = %v", got)
				}
				if got := f.outboxTypes(); !slices.Equal(got, []string{"user.linked"}) {
					t.Errorf("outbox = %v", got)
				}
			},
		},
		{
			name: "link refused: linking off", email: "ana", verified: bptr(true),
			setup:      existingAna,
			wantReason: provision.ReasonLinkNotAllowed, wantWrites: refused,
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				ev := f.lastAudit("login.refused")
				if ev == nil || ev.Details["reason"] != provision.ReasonLinkNotAllowed || ev.Details["subject"] != "sub-1" ||
					ev.Details["connection"] != f.conn.ID || ev.Details["email"] != f.email("ana") || ev.TargetID != res.User.ID {
					t.Errorf("refusal audit = %+v", ev)
				}
			},
		},
		{
			name: "link refused: email_verified absent", email: "ana",
			policy: allowLink, setup: existingAna,
			wantReason: provision.ReasonEmailUnverified, wantWrites: refused,
		},
		{
			name: "link allowed: email_verified absent, connection authoritative", email: "ana",
			policy: func(f *fixture, p *gatehouse.JITPolicy) {
				p.LinkExistingByEmail, p.AuthoritativeForDomains = true, true
			},
			setup:       existingAna,
			wantOutcome: provision.OutcomeLinked, wantWrites: counts{links: 1, audit: 2, outbox: 1},
		},
		{
			name: "link refused: email_verified false", email: "ana", verified: bptr(false),
			policy: func(f *fixture, p *gatehouse.JITPolicy) {
				p.LinkExistingByEmail, p.AuthoritativeForDomains = true, true
			},
			setup:      existingAna,
			wantReason: provision.ReasonEmailUnverified, wantWrites: refused,
		},
		{
			name: "link allowed: email_verified false, unverified trusted", email: "ana", verified: bptr(false),
			policy:      func(f *fixture, p *gatehouse.JITPolicy) { p.LinkExistingByEmail, p.TrustUnverifiedEmail = true, true },
			setup:       existingAna,
			wantOutcome: provision.OutcomeLinked, wantWrites: counts{links: 1, audit: 2, outbox: 1},
		},
		{
			name: "link refused: domain not verified by the tenant", email: "dee@contractor.io", verified: bptr(true),
			policy: func(f *fixture, p *gatehouse.JITPolicy) {
				p.LinkExistingByEmail, p.AllowedDomains = true, &[]string{"contractor.io"}
			},
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.user("dee@contractor.io", "dee", gatehouse.SourceAdmin, gatehouse.StatusActive)
			},
			wantReason: provision.ReasonLinkNotAllowed, wantWrites: refused,
		},
		{
			name: "link refused: user already linked to another subject of this connection", email: "ana", verified: bptr(true),
			policy: allowLink,
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.link(f.user(f.email("ana"), "ana", gatehouse.SourceAdmin, gatehouse.StatusActive), "other-subject")
			},
			wantReason: provision.ReasonLinkNotAllowed, wantWrites: refused,
		},
		{
			name: "create: email_verified true", email: "ana", verified: bptr(true),
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
		},
		{
			name: "create refused: email_verified false", email: "ana", verified: bptr(false),
			wantReason: provision.ReasonEmailUnverified, wantWrites: refused,
		},
		{
			name: "create: email_verified false, unverified trusted", email: "ana", verified: bptr(false),
			policy:      func(f *fixture, p *gatehouse.JITPolicy) { p.TrustUnverifiedEmail = true },
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
		},
		{
			name: "create refused: domain not allowed (tenant domains by default)", email: "eve@gmail.com",
			wantReason: provision.ReasonDomainNotAllowed, wantWrites: refused,
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if !strings.Contains(gatehouse.ErrorMessage(err), "gmail.com") {
					t.Errorf("message = %q", gatehouse.ErrorMessage(err))
				}
			},
		},
		{
			name: "create: any domain with []", email: "eve@gmail.com", policy: anyDomain,
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
		},
		{
			name: "create: listed domain", email: "fay@partner.io",
			policy:      func(f *fixture, p *gatehouse.JITPolicy) { p.AllowedDomains = &[]string{"Partner.io"} },
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
		},
		{
			name: "create refused: a list replaces the tenant's domains", email: "ana",
			policy:     func(f *fixture, p *gatehouse.JITPolicy) { p.AllowedDomains = &[]string{"partner.io"} },
			wantReason: provision.ReasonDomainNotAllowed, wantWrites: refused,
		},
		{
			name: "create refused: JIT off", email: "ana",
			policy:     func(f *fixture, p *gatehouse.JITPolicy) { p.Enabled = false },
			wantReason: provision.ReasonJITDisabled, wantWrites: refused,
		},
		{
			name: "JIT off still signs in linked users", email: "ana",
			policy: func(f *fixture, p *gatehouse.JITPolicy) { p.Enabled = false },
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.link(f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive), id.Subject)
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{audit: 1},
		},
		{
			name: "deactivated: linked user refused", email: "ana",
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.link(f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusDeactivated), id.Subject)
			},
			wantReason: provision.ReasonUserDeactivated, wantWrites: refused,
		},
		{
			name: "deactivated: same email refused, not re-created", email: "ana", verified: bptr(true), policy: allowLink,
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.user(f.email("ana"), "ana", gatehouse.SourceSCIM, gatehouse.StatusDeactivated)
			},
			wantReason: provision.ReasonUserDeactivated, wantWrites: refused,
		},
		{
			name: "tombstone: refused, never re-created", email: "ana", verified: bptr(true), policy: allowLink,
			setup: func(f *fixture, id *gatehouse.Identity) {
				u := f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive)
				f.link(u, id.Subject)
				f.update(func(tx gatehouse.Tx) error { return tx.DeleteUser(f.ctx, f.tenant.ID, u.ID) })
			},
			wantReason: provision.ReasonUserDeleted, wantWrites: refused,
		},
		{
			name: "pending approval: created and committed, login refused", email: "ana",
			policy:      func(f *fixture, p *gatehouse.JITPolicy) { p.RequireApproval = true },
			wantOutcome: provision.OutcomePending, wantReason: provision.ReasonPendingApproval,
			wantWrites: counts{users: 1, links: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.User.Status != gatehouse.StatusPending || res.User.LastLoginAt != nil {
					t.Errorf("user = %+v", res.User)
				}
				if got := f.audit(); !slices.Equal(got, []string{"login.refused", "user.jit_created"}) {
					t.Errorf("audit = %v", got)
				}
				// Again: still pending, refused, nothing created.
				before := f.counts()
				res2, err := f.resolve(f.identity("sub-1", f.email("ana")), provision.Apply)
				if gatehouse.ErrorReason(err) != provision.ReasonPendingApproval || res2.Outcome != provision.OutcomePending {
					t.Fatalf("second login: %v %+v", err, res2)
				}
				if got := f.counts(); got != (counts{before.users, before.links, before.memberships, before.audit + 1, before.outbox}) {
					t.Errorf("second login wrote %+v (before %+v)", got, before)
				}
				// Approved: signs in.
				u, err := f.r.Approve(f.ctx, f.tenant.ID, res.User.ID, gatehouse.Actor{Type: "api_token", ID: "tok_1"})
				if err != nil || u.Status != gatehouse.StatusActive {
					t.Fatalf("Approve: %v %+v", err, u)
				}
				if _, err := f.r.Approve(f.ctx, f.tenant.ID, res.User.ID, gatehouse.Actor{Type: "api_token", ID: "tok_1"}); gatehouse.ErrorCode(err) != gatehouse.ECONFLICT {
					t.Errorf("second Approve: %v, want conflict", err)
				}
				if f.lastAudit("user.approved") == nil {
					t.Error("no user.approved audit event")
				}
				res3, err := f.resolve(f.identity("sub-1", f.email("ana")), provision.Apply)
				if err != nil || res3.Outcome != provision.OutcomeExisting {
					t.Fatalf("after approval: %v %+v", err, res3)
				}
			},
		},
		{
			name: "profile update on: changed attributes written once", email: "ana2",
			username: "ana.new",
			setup: func(f *fixture, id *gatehouse.Identity) {
				u := f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive)
				f.link(u, id.Subject)
				id.DisplayName, id.GivenName = "Ana L", "Ana"
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				u := res.User
				if !res.Updated || u.Email != f.email("ana2") || u.Username != "ana.new" || u.DisplayName != "Ana L" || u.GivenName != "Ana" || u.FamilyName != "" {
					t.Errorf("result = %+v user %+v", res, u)
				}
				ev := f.lastAudit("user.updated_from_idp")
				if ev == nil || fmt.Sprint(ev.Details["changed"]) != "[display_name given_name email username]" {
					t.Errorf("audit = %+v", ev)
				}
				// The same login again changes nothing and records no update.
				id := f.identity("sub-1", f.email("ana2"))
				id.Username, id.DisplayName, id.GivenName = "ana.new", "Ana L", "Ana"
				before := f.counts()
				res2, err := f.resolve(id, provision.Apply)
				if err != nil || res2.Updated {
					t.Fatalf("second login: %v %+v", err, res2)
				}
				if got := f.counts(); got.audit != before.audit+1 || got.outbox != before.outbox {
					t.Errorf("second login wrote %+v (before %+v)", got, before)
				}
			},
		},
		{
			name: "profile update on: email of another user is not taken", email: "bo",
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.link(f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive), id.Subject)
				f.user(f.email("bo"), "bo", gatehouse.SourceAdmin, gatehouse.StatusActive)
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{audit: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.User.Email != f.email("ana") || res.Updated {
					t.Errorf("user = %+v", res.User)
				}
			},
		},
		{
			name: "profile update off: nothing changes", email: "ana2",
			policy: func(f *fixture, p *gatehouse.JITPolicy) { p.UpdateProfile = false },
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.link(f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive), id.Subject)
				id.DisplayName = "New Name"
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{audit: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.Updated || res.User.Email != f.email("ana") || res.User.DisplayName != "" {
					t.Errorf("result = %+v", res)
				}
			},
		},
		{
			name: "group sync: adds and removes only its own memberships", email: "ana",
			policy: func(f *fixture, p *gatehouse.JITPolicy) {
				p.GroupSync = gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{
					"okta-eng": "Engineering", "okta-sales": "Sales", "okta-admins": "Admins", "okta-gone": "Deleted Group"}}
			},
			setup: func(f *fixture, id *gatehouse.Identity) {
				u := f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive)
				f.link(u, id.Subject)
				conn := gatehouse.ManagedByConnection(f.conn.ID)
				f.member(u, "Sales", conn)                                         // synced before; no longer sent: removed
				f.member(u, "Sales", gatehouse.ManagedByAdmin)                     // admin's: kept
				f.member(u, "Everyone", provision.DefaultGroupsManager(f.conn.ID)) // default: kept
				f.member(u, "Admins", gatehouse.ManagedBySCIM)                     // SCIM's: kept
				id.Groups = []string{"okta-eng", "okta-admins", "unmapped", "okta-gone"}
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{memberships: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				want := []string{"Admins/connection:C", "Admins/scim", "Engineering/connection:C",
					"Everyone/connection:C:default", "Sales/admin"}
				if got := f.memberships(res.User.ID); !slices.Equal(got, want) {
					t.Errorf("memberships = %v\nwant %v", got, want)
				}
				if !res.Updated || !slices.Equal(res.Groups, []string{"Admins", "Engineering", "Everyone", "Sales"}) {
					t.Errorf("result = %+v", res)
				}
				ev := f.lastAudit("user.updated_from_idp")
				if ev == nil || fmt.Sprint(ev.Details["groups_added"]) != "[Admins Engineering]" || fmt.Sprint(ev.Details["groups_removed"]) != "[Sales]" {
					t.Errorf("audit = %+v", ev)
				}
			},
		},
		{
			name: "group sync: partial group list removes nothing", email: "ana",
			policy: func(f *fixture, p *gatehouse.JITPolicy) {
				p.GroupSync = gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{"okta-sales": "Sales", "okta-eng": "Engineering"}}
			},
			setup: func(f *fixture, id *gatehouse.Identity) {
				u := f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive)
				f.link(u, id.Subject)
				f.member(u, "Sales", gatehouse.ManagedByConnection(f.conn.ID))
				id.Groups, id.GroupsIncomplete = []string{"okta-eng"}, true
			},
			wantOutcome: provision.OutcomeExisting, wantWrites: counts{memberships: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if got := f.memberships(res.User.ID); !slices.Equal(got, []string{"Engineering/connection:C", "Sales/connection:C"}) {
					t.Errorf("memberships = %v", got)
				}
			},
		},
		{
			name: "group sync at creation, with default groups", email: "ana",
			policy: func(f *fixture, p *gatehouse.JITPolicy) {
				p.DefaultGroups = []string{"Everyone"}
				p.GroupSync = gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{"okta-eng": "Engineering"}}
			},
			setup:       func(f *fixture, id *gatehouse.Identity) { id.Groups = []string{"okta-eng"} },
			wantOutcome: provision.OutcomeCreated, wantWrites: counts{users: 1, links: 1, memberships: 2, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if !slices.Equal(res.Groups, []string{"Engineering", "Everyone"}) {
					t.Errorf("groups = %v", res.Groups)
				}
			},
		},
		{
			name: "missing email", email: "",
			wantReason: provision.ReasonMissingEmail, wantCode: gatehouse.EINVALID, wantWrites: refused,
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if !strings.Contains(gatehouse.ErrorMessage(err), `"email"`) {
					t.Errorf("message does not name the attribute: %q", gatehouse.ErrorMessage(err))
				}
			},
		},
		{
			name: "invalid email", email: "ana@@DOMAIN",
			wantReason: provision.ReasonInvalidEmail, wantCode: gatehouse.EINVALID, wantWrites: refused,
		},
		{
			name: "SCIM reconciliation: SCIM user linked by externalId without the email policy", email: "gus",
			setup: func(f *fixture, id *gatehouse.Identity) {
				u := &gatehouse.User{TenantID: f.tenant.ID, Email: f.email("gus"), Username: "gus@okta", ExternalID: id.Subject,
					Source: gatehouse.SourceSCIM}
				f.update(func(tx gatehouse.Tx) error {
					if err := tx.CreateUser(f.ctx, u); err != nil {
						return err
					}
					return tx.CreateSCIMToken(f.ctx, &gatehouse.SCIMToken{ID: gatehouse.NewID("sct"), TenantID: f.tenant.ID,
						Name: "okta", ConnectionID: f.conn.ID, Hash: []byte(gatehouse.NewID("h"))})
				})
			},
			wantOutcome: provision.OutcomeLinked, wantWrites: counts{links: 1, audit: 2, outbox: 1},
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.User.Source != gatehouse.SourceSCIM || res.User.Username != "gus@okta" {
					t.Errorf("user = %+v", res.User)
				}
				if ev := f.lastAudit("user.linked"); ev == nil || ev.Details["via"] != "scim_externalId" {
					t.Errorf("audit = %+v", ev)
				}
			},
		},
		{
			name: "SCIM user of another connection's token: email policy applies", email: "gus",
			setup: func(f *fixture, id *gatehouse.Identity) {
				f.update(func(tx gatehouse.Tx) error {
					if err := tx.CreateUser(f.ctx, &gatehouse.User{TenantID: f.tenant.ID, Email: f.email("gus"), Username: "gus",
						Source: gatehouse.SourceSCIM}); err != nil {
						return err
					}
					return tx.CreateSCIMToken(f.ctx, &gatehouse.SCIMToken{ID: gatehouse.NewID("sct"), TenantID: f.tenant.ID,
						Name: "other", Hash: []byte(gatehouse.NewID("h"))})
				})
			},
			wantReason: provision.ReasonLinkNotAllowed, wantWrites: refused,
		},
		{
			name: "dry run: create writes nothing", email: "ana", mode: provision.DryRun,
			policy:      func(f *fixture, p *gatehouse.JITPolicy) { p.DefaultGroups = []string{"Everyone"} },
			wantOutcome: provision.OutcomeCreated,
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if res.User.Username != "ana" || !slices.Equal(res.Groups, []string{"Everyone"}) || len(res.Explanation) < 2 {
					t.Errorf("result = %+v", res)
				}
				t.Logf("dry-run explanation: %q", res.Explanation)
			},
		},
		{
			name: "dry run: refusal writes nothing, not even its audit", email: "ana", mode: provision.DryRun,
			policy:     func(f *fixture, p *gatehouse.JITPolicy) { p.Enabled = false },
			wantReason: provision.ReasonJITDisabled,
		},
		{
			name: "dry run: group sync and profile update write nothing", email: "ana2", mode: provision.DryRun,
			policy: func(f *fixture, p *gatehouse.JITPolicy) {
				p.GroupSync = gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{"okta-eng": "Engineering"}}
			},
			setup: func(f *fixture, id *gatehouse.Identity) {
				u := f.user(f.email("ana"), "ana", gatehouse.SourceJIT, gatehouse.StatusActive)
				f.link(u, id.Subject)
				f.member(u, "Sales", gatehouse.ManagedByConnection(f.conn.ID))
				id.Groups = []string{"okta-eng"}
			},
			wantOutcome: provision.OutcomeExisting,
			check: func(t *testing.T, f *fixture, res *provision.Result, err error) {
				if !res.Updated || !slices.Equal(res.Groups, []string{"Engineering"}) || res.User.Email != f.email("ana2") {
					t.Errorf("result = %+v", res)
				}
				if got := f.memberships(res.User.ID); !slices.Equal(got, []string{"Sales/connection:C"}) {
					t.Errorf("memberships changed: %v", got)
				}
			},
		},
	}
	forEnginesBothPaths(t, func(t *testing.T, s *sqlstore.Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := newFixture(t, s)
				if tt.policy != nil {
					tt.policy(f, &f.conn.JIT)
					f.update(func(tx gatehouse.Tx) error { return tx.UpdateConnection(f.ctx, f.conn) })
				}
				email := tt.email
				if email != "" && !strings.Contains(email, "@") {
					email = f.email(email)
				}
				email = strings.Replace(email, "DOMAIN", strings.ToUpper(f.domain()), 1)
				id := f.identity("sub-1", email)
				id.EmailVerified, id.Username = tt.verified, tt.username
				if tt.setup != nil {
					tt.setup(f, id)
				}
				mode := tt.mode
				if mode == 0 {
					mode = provision.Apply
				}
				before := f.counts()
				res, err := f.resolve(id, mode)
				after := f.counts()
				delta := counts{after.users - before.users, after.links - before.links,
					after.memberships - before.memberships, after.audit - before.audit, after.outbox - before.outbox}
				if delta != tt.wantWrites {
					t.Errorf("writes = %+v, want %+v", delta, tt.wantWrites)
				}
				if tt.wantReason != "" {
					code := tt.wantCode
					if code == "" {
						code = gatehouse.EFORBIDDEN
					}
					if gatehouse.ErrorCode(err) != code || gatehouse.ErrorReason(err) != tt.wantReason {
						t.Fatalf("err = %v (reason %q), want %s/%s", err, gatehouse.ErrorReason(err), code, tt.wantReason)
					}
					if gatehouse.ErrorMessage(err) == "" || res == nil || len(res.Explanation) == 0 {
						t.Errorf("refusal without message or explanation: %v %+v", err, res)
					}
				} else if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if tt.wantOutcome != "" && (res == nil || res.Outcome != tt.wantOutcome) {
					t.Fatalf("outcome = %+v, want %s", res, tt.wantOutcome)
				}
				if tt.check != nil {
					tt.check(t, f, res, err)
				}
			})
		}
	})
}

// TestResolveConcurrentFirstLogin: 50 simultaneous first logins of one new
// identity make one user and one link, and all 50 succeed.
func TestResolveConcurrentFirstLogin(t *testing.T) {
	const n = 50
	forEnginesBothPaths(t, func(t *testing.T, s *sqlstore.Store) {
		f := newFixture(t, s)
		f.conn.JIT.DefaultGroups = []string{"Everyone"}
		f.conn.JIT.GroupSync = gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{"eng": "Engineering"}}
		var wg sync.WaitGroup
		results := make([]*provision.Result, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				id := f.identity("sub-race", f.email("rita"))
				id.Groups = []string{"eng"}
				results[i], errs[i] = f.resolve(id, provision.Apply)
			}()
		}
		close(start)
		wg.Wait()
		outcomes := map[string]int{}
		userID := ""
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("login %d: %v", i, errs[i])
			}
			outcomes[results[i].Outcome]++
			if userID == "" {
				userID = results[i].User.ID
			} else if results[i].User.ID != userID {
				t.Fatalf("login %d got user %s, others %s", i, results[i].User.ID, userID)
			}
		}
		if outcomes[provision.OutcomeCreated] != 1 || outcomes[provision.OutcomeExisting] != n-1 {
			t.Errorf("outcomes = %v", outcomes)
		}
		c := f.counts()
		if c.users != 1 || c.links != 1 || c.memberships != 2 || c.outbox != 1 {
			t.Errorf("rows = %+v", c)
		}
		if got := f.memberships(userID); !slices.Equal(got, []string{"Engineering/connection:C", "Everyone/connection:C:default"}) {
			t.Errorf("memberships = %v", got)
		}
	})
}

// TestResolveConcurrentUsernames: different new people with the same email
// local part arriving together get distinct usernames.
func TestResolveConcurrentUsernames(t *testing.T) {
	const n = 10
	forEngines(t, func(t *testing.T, s *sqlstore.Store) {
		f := newFixture(t, s)
		f.conn.JIT.AllowedDomains = &[]string{}
		var wg sync.WaitGroup
		names := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := f.resolve(f.identity(fmt.Sprintf("s%d", i), fmt.Sprintf("sam@d%d.example", i)), provision.Apply)
				if err != nil {
					t.Errorf("login %d: %v", i, err)
					return
				}
				names[i] = res.User.Username
			}()
		}
		wg.Wait()
		slices.Sort(names)
		if len(slices.Compact(slices.Clone(names))) != n {
			t.Errorf("usernames not unique: %v", names)
		}
	})
}

func BenchmarkResolveCreate(b *testing.B) {
	for _, engine := range testdb.Engines {
		b.Run(engine, func(b *testing.B) {
			f := newFixture(b, openStore(b, engine))
			f.conn.JIT.DefaultGroups = []string{"Everyone"}
			i := 0
			cpu0 := testdb.ProcessCPU()
			for b.Loop() {
				i++
				if _, err := f.resolve(f.identity(fmt.Sprintf("sub-%d", i), f.email(fmt.Sprintf("u%d", i))), provision.Apply); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((testdb.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func BenchmarkResolveReturning(b *testing.B) {
	for _, engine := range testdb.Engines {
		b.Run(engine, func(b *testing.B) {
			f := newFixture(b, openStore(b, engine))
			f.conn.JIT.DefaultGroups = []string{"Everyone"}
			id := f.identity("sub-ret", f.email("ret"))
			id.DisplayName = "Ret Urning"
			if _, err := f.resolve(id, provision.Apply); err != nil {
				b.Fatal(err)
			}
			cpu0 := testdb.ProcessCPU()
			for b.Loop() {
				res, err := f.resolve(id, provision.Apply)
				if err != nil || res.Outcome != provision.OutcomeExisting {
					b.Fatal(err, res)
				}
			}
			b.ReportMetric(float64((testdb.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func TestValidatePolicy(t *testing.T) {
	forEngines(t, func(t *testing.T, s *sqlstore.Store) {
		f := newFixture(t, s)
		tests := []struct {
			name      string
			p         gatehouse.JITPolicy
			wantField string
		}{
			{"default", gatehouse.DefaultJITPolicy(), ""},
			{"known groups", gatehouse.JITPolicy{DefaultGroups: []string{"everyone"},
				GroupSync: gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{"x": "Sales"}}}, ""},
			{"domains", gatehouse.JITPolicy{AllowedDomains: &[]string{"partner.io", "Sub.Example.COM"}}, ""},
			{"unknown default group", gatehouse.JITPolicy{DefaultGroups: []string{"Nope"}}, "jit.default_groups"},
			{"unknown sync target", gatehouse.JITPolicy{GroupSync: gatehouse.GroupSync{Mapping: map[string]string{"x": "Nope"}}}, "jit.group_sync.mapping"},
			{"empty idp group", gatehouse.JITPolicy{GroupSync: gatehouse.GroupSync{Mapping: map[string]string{" ": "Sales"}}}, "jit.group_sync.mapping"},
			{"email as domain", gatehouse.JITPolicy{AllowedDomains: &[]string{"@partner.io"}}, "jit.allowed_domains"},
			{"url as domain", gatehouse.JITPolicy{AllowedDomains: &[]string{"https://partner.io"}}, "jit.allowed_domains"},
			{"bare label", gatehouse.JITPolicy{AllowedDomains: &[]string{"localhost"}}, "jit.allowed_domains"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var err error
				f.view(func(tx gatehouse.Tx) error {
					err = provision.ValidatePolicy(f.ctx, tx, f.tenant.ID, tt.p)
					return nil
				})
				if tt.wantField == "" {
					if err != nil {
						t.Fatal(err)
					}
				} else if gatehouse.ErrorCode(err) != gatehouse.EINVALID || gatehouse.ErrorField(err) != tt.wantField {
					t.Fatalf("err = %v (field %q), want EINVALID on %s", err, gatehouse.ErrorField(err), tt.wantField)
				}
			})
		}
	})
}

// TestResolveConcurrentReturning: simultaneous logins of a known user whose
// IdP profile changed update it once; every login succeeds.
func TestResolveConcurrentReturning(t *testing.T) {
	const n = 20
	forEngines(t, func(t *testing.T, s *sqlstore.Store) {
		f := newFixture(t, s)
		f.link(f.user(f.email("ro"), "ro", gatehouse.SourceJIT, gatehouse.StatusActive), "sub-ro")
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := f.identity("sub-ro", f.email("ro"))
				id.DisplayName = "Ro Renamed"
				if res, err := f.resolve(id, provision.Apply); err != nil || res.User.DisplayName != "Ro Renamed" {
					t.Errorf("login %d: %v %+v", i, err, res)
				}
			}()
		}
		wg.Wait()
		var updates int
		f.view(func(tx gatehouse.Tx) (err error) {
			updates, err = countAudit(f, tx, "user.updated_from_idp")
			return err
		})
		if updates != 1 {
			t.Errorf("user.updated_from_idp events = %d, want 1", updates)
		}
	})
}

func countAudit(f *fixture, tx gatehouse.Tx, action string) (int, error) {
	evs, _, err := tx.ListAudit(f.ctx, f.tenant.ID, gatehouse.AuditFilter{Action: action}, gatehouse.Page{Limit: 1000})
	return len(evs), err
}

// TestResolveSAMLAttributes runs a SAML-shaped attribute set (Entra ID
// claim URIs, multi-valued) through mapping.Apply and Resolve: the
// resolver does not care which protocol the identity came from.
func TestResolveSAMLAttributes(t *testing.T) {
	forEngines(t, func(t *testing.T, s *sqlstore.Store) {
		f := newFixture(t, s)
		f.conn.Type = gatehouse.ConnSAML
		f.conn.JIT.GroupSync = gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{"6f1d-guid": "Engineering"}}
		raw := map[string]any{
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": []any{f.email("Zoe")},
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname":    []any{"Zoe"},
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname":      []any{"Zhang"},
			"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups":     []any{"6f1d-guid", "other-guid"},
		}
		id := f.identity("AAAAAAAA-nameid", "")
		if err := mapping.Apply(gatehouse.ConnSAML, f.conn.Mapping, raw, id); err != nil {
			t.Fatal(err)
		}
		res, err := f.resolve(id, provision.Apply)
		if err != nil {
			t.Fatal(err)
		}
		u := res.User
		if res.Outcome != provision.OutcomeCreated || u.Username != "zoe" || u.GivenName != "Zoe" || u.FamilyName != "Zhang" ||
			u.DisplayName != "" || !slices.Equal(u.Groups, []string{"Engineering"}) {
			t.Errorf("result = %+v user %+v", res, u)
		}
		// Without the email attribute the refusal names what was expected.
		id = f.identity("BBBB-nameid", "")
		if err := mapping.Apply(gatehouse.ConnSAML, f.conn.Mapping, map[string]any{"uid": []any{"bo"}}, id); err != nil {
			t.Fatal(err)
		}
		_, err = f.resolve(id, provision.Apply)
		if gatehouse.ErrorReason(err) != provision.ReasonMissingEmail || !strings.Contains(gatehouse.ErrorMessage(err), `"email (or mail)"`) {
			t.Errorf("err = %v", err)
		}
	})
}
