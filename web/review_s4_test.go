package web

import (
	"context"
	"net/url"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// Review (session 4): the login guard's one statement (guardLogin,
// UseOnceIfCurrent) through the real callback, on both engines: a
// replayed callback, a replay after the connection changed, and a
// connection moved to another tenant without its updated_at moving.
func TestReviewS4LoginGuard(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			remote := func(query string, args ...any) {
				t.Helper()
				if _, err := e.store.DB().ExecContext(context.Background(), query, args...); err != nil {
					t.Fatal(err)
				}
			}
			setup := func(slug string) (*gatehouse.Tenant, *gatehouse.Connection, string) {
				te := e.tenant(slug)
				c := e.mockConn(te, "SSO "+slug, "acme.com")
				return te, c, loginPath(slug, url.Values{"connection": {c.ID}, "login_hint": {"ana@acme.com"}})
			}
			succeeded := func(te *gatehouse.Tenant) int { return len(e.audit(te, "login.succeeded")) }

			t.Run("a replayed callback", func(t *testing.T) {
				te, _, start := setup("s4replay")
				b := e.browser()
				r := b.get(start)
				cb, flow := r.Header.Get("Location"), r.Cookies()[0]
				wantStatus(t, b.follow(cb), 200, "ana@acme.com")
				again := replay(t, b, cb, flow)
				wantStatus(t, again, 400, "already used")
				if n := succeeded(te); n != 1 {
					t.Errorf("%d login.succeeded events, want 1", n)
				}
			})
			t.Run("a replayed callback after the connection changed", func(t *testing.T) {
				te, c, start := setup("s4replaychanged")
				b := e.browser()
				r := b.get(start)
				cb, flow := r.Header.Get("Location"), r.Cookies()[0]
				wantStatus(t, b.follow(cb), 200, "ana@acme.com")
				remote(`UPDATE connections SET updated_at = updated_at + 1 WHERE id = $1`, c.ID)
				again := replay(t, b, cb, flow)
				if again.StatusCode == 200 || again.StatusCode == 302 {
					t.Errorf("replay after a change: %d", again.StatusCode)
				}
				if n := succeeded(te); n != 1 {
					t.Errorf("%d login.succeeded events, want 1", n)
				}
			})
			t.Run("a connection moved to another tenant mid-login", func(t *testing.T) {
				te, c, start := setup("s4moved")
				other := e.tenant("s4movedother")
				b := e.browser()
				cb := b.get(start).Header.Get("Location")
				// Another replica moves the row, its updated_at untouched.
				remote(`UPDATE connections SET tenant_id = $1 WHERE id = $2`, other.ID, c.ID)
				r := b.follow(cb)
				wantStatus(t, r, 403, "changed while you were signing in")
				if _, err := e.lookupUser(te, "ana@acme.com"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("user in the login's tenant: %v", err)
				}
				if _, err := e.lookupUser(other, "ana@acme.com"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("user in the other tenant: %v", err)
				}
				if n := succeeded(te) + succeeded(other); n != 0 {
					t.Errorf("%d login.succeeded events, want 0", n)
				}
			})
		})
	}
}
