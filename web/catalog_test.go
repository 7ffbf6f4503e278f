package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/session"
)

// TestCatalogBound: the per-replica catalog of tenants and connections may
// let a login START through a connection changed on another replica for at
// most catalogTTL, but no login FINISHES with a connection or tenant that
// changed, was disabled or deleted after it was read; a write through this
// process is seen at once. "Another replica" writes with plain SQL, which
// the process's generation does not see.
func TestCatalogBound(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			remote := func(query string, args ...any) {
				t.Helper()
				if _, err := e.store.DB().ExecContext(context.Background(), query, args...); err != nil {
					t.Fatal(err)
				}
			}
			bumpConn := func(c *gatehouse.Connection, enabled bool) {
				remote(`UPDATE connections SET enabled = $1, updated_at = updated_at + 1 WHERE id = $2`, enabled, c.ID)
			}
			// Each case has a tenant of its own; its connection admits
			// acme.com, the domain of the mock's users.
			setup := func(slug string) (*gatehouse.Tenant, *gatehouse.Connection, func(email string) string) {
				te := e.tenant(slug)
				c := e.mockConn(te, "SSO "+slug, "acme.com")
				start := func(email string) string {
					return loginPath(slug, url.Values{"connection": {c.ID}, "login_hint": {email}})
				}
				return te, c, start
			}
			// started begins a login and returns its callback URL.
			started := func(t *testing.T, b *browser, u string) string {
				t.Helper()
				r := b.get(u)
				if r.StatusCode != http.StatusFound {
					t.Fatalf("login start: %d %s", r.StatusCode, r.Body)
				}
				return r.Header.Get("Location")
			}
			noLogin := func(t *testing.T, te *gatehouse.Tenant, r *result, email string) {
				t.Helper()
				if setCookie(r.Response, session.CookieName) != nil {
					t.Error("a session cookie was set")
				}
				if _, err := e.lookupUser(te, email); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("user %s: %v, want not found", email, err)
				}
			}

			cases := []struct {
				name string
				// change is made on "another replica" after the login
				// started through a warm catalog.
				change func(te *gatehouse.Tenant, c *gatehouse.Connection)
				want   string
				// afterTTL is what a new login start shows once the bound
				// passed.
				afterStatus int
				afterBody   string
			}{
				{"disabled", func(_ *gatehouse.Tenant, c *gatehouse.Connection) { bumpConn(c, false) },
					"turned off while you were signing in", 403, "turned off"},
				{"changed", func(_ *gatehouse.Tenant, c *gatehouse.Connection) { bumpConn(c, true) },
					"changed while you were signing in", 302, ""},
				{"deleted", func(_ *gatehouse.Tenant, c *gatehouse.Connection) {
					remote(`DELETE FROM connections WHERE id = $1`, c.ID)
				}, "changed while you were signing in", 404, "does not exist"},
				{"tenant changed", func(te *gatehouse.Tenant, _ *gatehouse.Connection) {
					remote(`UPDATE tenants SET updated_at = updated_at + 1 WHERE id = $1`, te.ID)
				}, "changed while you were signing in", 302, ""},
			}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					te, c, start := setup("bound" + string(rune('a'+i)))
					b := e.browser()
					cb := started(t, b, start("ana@acme.com")) // warms the catalog
					tc.change(te, c)
					// Within the bound a start may still go to the IdP...
					started(t, e.browser(), start("bo@acme.com"))
					// ...but no login under way finishes.
					r := b.follow(cb)
					wantStatus(t, r, 403, tc.want)
					noLogin(t, te, r, "ana@acme.com")
					if n := len(e.audit(te, auditLoginFailed)); n != 1 {
						t.Errorf("%d login.failed events, want 1", n)
					}
					// After the bound every replica reads it again.
					e.clock.Advance(catalogTTL)
					r = e.browser().get(start("bo@acme.com"))
					if r.StatusCode != tc.afterStatus {
						t.Fatalf("start after %s: %d, want %d\n%s", catalogTTL, r.StatusCode, tc.afterStatus, r.Body)
					}
					if tc.afterStatus == http.StatusFound {
						// A changed (still enabled) connection signs in again.
						wantStatus(t, e.browser().follow(start("ana@acme.com")), 200, "ana@acme.com")
					} else {
						wantStatus(t, r, tc.afterStatus, tc.afterBody)
					}
				})
			}

			t.Run("a write through this process is seen at once", func(t *testing.T) {
				_, c, start := setup("boundlocal")
				started(t, e.browser(), start("ana@acme.com")) // warms the catalog
				c.Enabled = false
				e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.UpdateConnection(ctx, c) })
				wantStatus(t, e.browser().get(start("ana@acme.com")), 403, "turned off")
			})

			t.Run("the bound holds with a clock that went back", func(t *testing.T) {
				_, c, start := setup("boundclock")
				started(t, e.browser(), start("ana@acme.com"))
				bumpConn(c, false)
				e.clock.Advance(-time.Hour)
				defer e.clock.Advance(time.Hour)
				wantStatus(t, e.browser().get(start("ana@acme.com")), 403, "turned off")
			})

			t.Run("a refused login's response cannot be tried again", func(t *testing.T) {
				te, c, start := setup("boundrefused")
				c.JIT.Enabled = false
				e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.UpdateConnection(ctx, c) })
				b := e.browser()
				r := b.get(start("ana@acme.com"))
				cb, flow := r.Header.Get("Location"), r.Cookies()[0]
				wantStatus(t, b.follow(cb), 403, "does not create accounts")
				// The admin turns JIT on; the captured response still may
				// not sign anyone in.
				c.JIT.Enabled = true
				e.update(func(ctx context.Context, tx gatehouse.Tx) error { return tx.UpdateConnection(ctx, c) })
				again := replay(t, b, cb, flow)
				wantStatus(t, again, 400, "already used")
				noLogin(t, te, again, "ana@acme.com")
			})
		})
	}
}

// TestDeferredReplay: inside a login the connectors' one-time keys wait
// for the login's transaction; anywhere else they are written at once.
func TestDeferredReplay(t *testing.T) {
	e := newEnv(t, testdb.Engines[0])
	ctx := context.Background()
	d := e.web.env.Replay
	exp := e.clock.Now().Add(time.Hour)
	used := func(key string) bool {
		err := e.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, key, exp) })
		return gatehouse.IsCode(err, gatehouse.ECONFLICT)
	}
	if err := d.UseOnce(ctx, "k:now", exp); err != nil {
		t.Fatal(err)
	}
	if !used("k:now") {
		t.Error("outside a login the key was not written")
	}
	once := &singleUse{}
	if err := d.UseOnce(withSingleUse(ctx, once), "k:later", exp); err != nil {
		t.Fatal(err)
	}
	if len(once.list()) != 1 {
		t.Fatalf("keys %v", once.list())
	}
	// Not written yet: this write takes it, and the login's own write
	// then finds a replay.
	if used("k:later") {
		t.Fatal("inside a login the key was written at once")
	}
	err := e.store.Update(ctx, func(tx gatehouse.Tx) error { return once.write(ctx, tx) })
	if !errors.Is(err, errKeyUsed) || gatehouse.ErrorReason(err) != "k_replayed" || gatehouse.IsCode(err, gatehouse.ECONFLICT) {
		t.Fatalf("write of a used key: %v", err)
	}
	// The reason names the key's kind: the flow's, or a SAML assertion's
	// as connector/saml words it.
	for key, want := range map[string]string{"flow:flw_1": reasonReplayed, "saml:con_1:_a1": "saml_replayed", "plain": reasonReplayed} {
		if got := gatehouse.ErrorReason(errReplayed(key, nil)); got != want {
			t.Errorf("reason of %q: %s, want %s", key, got, want)
		}
	}
	// spend accepts keys used already.
	if err := e.store.Update(ctx, func(tx gatehouse.Tx) error { return once.spend(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}
