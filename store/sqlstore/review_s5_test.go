package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// Review (session 5) of a login's first look (provision firstLook,
// LinkOrFirstLoginProbe: on SQLite the link and the first-login probe in
// one UNION ALL): through provision's Resolver, each case on the store's
// fast paths and on the portable path (transactions that hide them), which
// must decide alike and write only what they decide.

// s5Portable is the store with its transactions' fast paths hidden.
type s5Portable struct{ *sqlstore.Store }

type s5PortableTx struct{ gatehouse.Tx }

func (p s5Portable) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return p.Store.Update(ctx, func(tx gatehouse.Tx) error { return fn(s5PortableTx{tx}) })
}

func (p s5Portable) View(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return p.Store.View(ctx, func(tx gatehouse.Tx) error { return fn(s5PortableTx{tx}) })
}

// s5Tenant is a tenant with a verified domain and an OIDC connection.
type s5Tenant struct {
	te   *gatehouse.Tenant
	conn *gatehouse.Connection
}

func TestReviewS5FirstLook(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			n := 0
			tenant := func(pol func(*gatehouse.JITPolicy)) *s5Tenant {
				t.Helper()
				n++
				slug := fmt.Sprintf("s5-%s-%d-%d", engine, n, time.Now().UnixNano())
				x := &s5Tenant{te: &gatehouse.Tenant{Slug: slug, Name: "T", Domains: []string{slug + ".test"}},
					conn: &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "Okta", Enabled: true, JIT: gatehouse.DefaultJITPolicy()}}
				if pol != nil {
					pol(&x.conn.JIT)
				}
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
					if err := tx.CreateTenant(ctx, x.te); err != nil {
						return err
					}
					x.conn.TenantID = x.te.ID
					return tx.CreateConnection(ctx, x.conn)
				}))
				return x
			}
			email := func(x *s5Tenant, local string) string { return local + "@" + x.te.Domains[0] }
			user := func(x *s5Tenant, local string) *gatehouse.User {
				t.Helper()
				u := &gatehouse.User{TenantID: x.te.ID, Email: email(x, local), Username: local, Source: gatehouse.SourceAdmin, Status: gatehouse.StatusActive}
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateUser(ctx, u) }))
				return u
			}
			link := func(x *s5Tenant, u *gatehouse.User, subject string) {
				t.Helper()
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
					return tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: x.te.ID, ConnectionID: x.conn.ID, Subject: subject, UserID: u.ID})
				}))
			}
			identity := func(x *s5Tenant, subject, mail string, verified bool) *gatehouse.Identity {
				return &gatehouse.Identity{TenantID: x.te.ID, ConnectionID: x.conn.ID, Issuer: "https://idp.example",
					Subject: subject, Email: mail, EmailVerified: &verified}
			}
			// rows counts x's users (tombstones included) and links.
			rows := func(x *s5Tenant) (users, links int) {
				t.Helper()
				must(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE tenant_id = $1`, x.te.ID).Scan(&users))
				must(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM federated_identities WHERE tenant_id = $1`, x.te.ID).Scan(&links))
				return users, links
			}

			for _, tc := range []struct {
				name string
				pol  func(*gatehouse.JITPolicy)
				// setup prepares x and returns the identity to resolve and
				// the user it must resolve to ("" for a new user).
				setup       func(x *s5Tenant) (*gatehouse.Identity, string)
				wantOutcome string // "" for a refusal
				wantReason  string
				// Rows the resolution adds.
				wantUsers, wantLinks int
			}{
				{name: "first login",
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						return identity(x, "sub-ana", email(x, "ana"), true), ""
					},
					wantOutcome: provision.OutcomeCreated, wantUsers: 1, wantLinks: 1},
				{name: "returning login",
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						u := user(x, "ana")
						link(x, u, "sub-ana")
						// A user with the identity's new email is not taken.
						user(x, "other")
						return identity(x, "sub-ana", email(x, "other"), true), u.ID
					},
					wantOutcome: provision.OutcomeExisting},
				{name: "linked to a user deleted since (DeleteUser)",
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						u := user(x, "ana")
						link(x, u, "sub-ana")
						must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteUser(ctx, x.te.ID, u.ID) }))
						return identity(x, "sub-ana", email(x, "ana"), true), ""
					},
					wantReason: provision.ReasonUserDeleted},
				{name: "linked to a tombstone (the link left behind)",
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						u := user(x, "ana")
						link(x, u, "sub-ana")
						_, err := s.DB().ExecContext(ctx, `UPDATE users SET deleted_at = $1 WHERE id = $2`, time.Now().UnixMicro(), u.ID)
						must(t, err)
						return identity(x, "sub-ana", email(x, "fresh"), true), ""
					},
					wantReason: provision.ReasonUserDeleted},
				{name: "a new subject with a deleted user's email",
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						u := user(x, "ana")
						must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteUser(ctx, x.te.ID, u.ID) }))
						return identity(x, "sub-new", email(x, "ana"), true), ""
					},
					wantReason: provision.ReasonUserDeleted},
				{name: "the email of an existing user, linking not allowed",
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						user(x, "ana")
						return identity(x, "sub-ana", email(x, "ana"), true), ""
					},
					wantReason: provision.ReasonLinkNotAllowed},
				{name: "the email of an existing user, upper-cased and padded, linking not allowed",
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						user(x, "ana")
						return identity(x, "sub-ana", "  ANA@"+x.te.Domains[0]+" ", true), ""
					},
					wantReason: provision.ReasonLinkNotAllowed},
				{name: "the email of an existing user, linking allowed, email unverified",
					pol: func(p *gatehouse.JITPolicy) { p.LinkExistingByEmail = true },
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						user(x, "ana")
						return identity(x, "sub-ana", email(x, "ana"), false), ""
					},
					wantReason: provision.ReasonEmailUnverified},
				{name: "the email of an existing user, linking allowed",
					pol: func(p *gatehouse.JITPolicy) { p.LinkExistingByEmail = true },
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						u := user(x, "ana")
						return identity(x, "sub-ana", email(x, "ana"), true), u.ID
					},
					wantOutcome: provision.OutcomeLinked, wantLinks: 1},
				{name: "the email of a deactivated user, linking allowed",
					pol: func(p *gatehouse.JITPolicy) { p.LinkExistingByEmail = true },
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						u := user(x, "ana")
						u.Status = gatehouse.StatusDeactivated
						must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateUser(ctx, u) }))
						return identity(x, "sub-ana", email(x, "ana"), true), ""
					},
					wantReason: provision.ReasonUserDeactivated},
				{name: "JIT off, no link",
					pol: func(p *gatehouse.JITPolicy) { p.Enabled = false },
					setup: func(x *s5Tenant) (*gatehouse.Identity, string) {
						return identity(x, "sub-ana", email(x, "ana"), true), ""
					},
					wantReason: provision.ReasonJITDisabled},
			} {
				for _, portable := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/portable=%v", tc.name, portable), func(t *testing.T) {
						x := tenant(tc.pol)
						id, wantUser := tc.setup(x)
						var st gatehouse.Store = s
						if portable {
							st = s5Portable{s}
						}
						r := provision.New(st, provision.Options{})
						users0, links0 := rows(x)
						res, err := r.Resolve(ctx, x.te, x.conn, id, provision.Apply)
						users, links := rows(x)
						if users-users0 != tc.wantUsers || links-links0 != tc.wantLinks {
							t.Errorf("added %d users, %d links; want %d, %d", users-users0, links-links0, tc.wantUsers, tc.wantLinks)
						}
						if tc.wantOutcome == "" {
							var ge *gatehouse.Error
							if !errors.As(err, &ge) || ge.Reason != tc.wantReason {
								t.Fatalf("%+v %v, want the refusal %s", res, err, tc.wantReason)
							}
							return
						}
						if err != nil || res.Outcome != tc.wantOutcome || res.User == nil {
							t.Fatalf("%+v %v, want %s", res, err, tc.wantOutcome)
						}
						if wantUser != "" && res.User.ID != wantUser {
							t.Errorf("resolved to %s, want %s", res.User.ID, wantUser)
						}
						if res.User.TenantID != x.te.ID {
							t.Errorf("a user of tenant %s", res.User.TenantID)
						}
					})
				}
			}

			t.Run("the same subject in two tenants", func(t *testing.T) {
				a, b := tenant(func(p *gatehouse.JITPolicy) { p.LinkExistingByEmail = true }), tenant(nil)
				ua := user(a, "ana")
				link(a, ua, "sub-shared")
				r := provision.New(s, provision.Options{})
				// In b, the subject linked in a is a first login, even
				// with a's user's email (b's domains do not matter here:
				// any domain is allowed).
				b.conn.JIT.AllowedDomains = &[]string{}
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateConnection(ctx, b.conn) }))
				res, err := r.Resolve(ctx, b.te, b.conn, identity(b, "sub-shared", ua.Email, true), provision.Apply)
				if err != nil || res.Outcome != provision.OutcomeCreated || res.User.ID == ua.ID || res.User.TenantID != b.te.ID {
					t.Fatalf("in b: %+v %v, want a new user of b", res, err)
				}
				// And back in a, the link still resolves to a's user.
				res, err = r.Resolve(ctx, a.te, a.conn, identity(a, "sub-shared", ua.Email, true), provision.Apply)
				if err != nil || res.Outcome != provision.OutcomeExisting || res.User.ID != ua.ID {
					t.Fatalf("in a: %+v %v, want a's user", res, err)
				}
				// a's connection resolving for b's tenant is refused.
				if _, err := r.Resolve(ctx, b.te, a.conn, identity(a, "sub-shared", ua.Email, true), provision.Apply); err == nil {
					t.Error("a's connection resolved for b")
				}
			})

			for _, portable := range []bool{false, true} {
				t.Run(fmt.Sprintf("concurrent first logins of one identity/portable=%v", portable), func(t *testing.T) {
					x := tenant(nil)
					var st gatehouse.Store = s
					if portable {
						st = s5Portable{s}
					}
					r := provision.New(st, provision.Options{MaxAttempts: 10})
					const logins = 8
					var wg sync.WaitGroup
					var mu sync.Mutex
					ids := map[string]int{}
					start := make(chan struct{})
					for range logins {
						wg.Add(1)
						go func() {
							defer wg.Done()
							<-start
							res, err := r.Resolve(ctx, x.te, x.conn, identity(x, "sub-race", email(x, "race"), true), provision.Apply)
							mu.Lock()
							defer mu.Unlock()
							if err != nil {
								t.Errorf("a concurrent first login failed: %v", err)
								return
							}
							ids[res.User.ID]++
						}()
					}
					close(start)
					wg.Wait()
					if len(ids) != 1 {
						t.Errorf("concurrent first logins resolved to %d users: %v", len(ids), ids)
					}
					if users, links := rows(x); users != 1 || links != 1 {
						t.Errorf("%d users, %d links; want 1, 1", users, links)
					}
				})
			}
		})
	}
}
