package sqlstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// TestPairedAccessTokens: an access token kept in its refresh token's row
// (migration 00350) reads and revokes like an access token of its own on
// both engines: by its id, within its tenant only; revoked alone (the
// refresh token stays live) or with its refresh token, grant, session,
// user or client; never found for a refresh token written without one.
func TestPairedAccessTokens(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			update := func(fn func(tx gatehouse.Tx) error) error { return s.Update(ctx, fn) }
			var acme, globex gatehouse.Tenant
			acme.Slug, acme.Name = "acme", "Acme"
			globex.Slug, globex.Name = "globex", "Globex"
			must(t, update(func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, &acme); err != nil {
					return err
				}
				return tx.CreateTenant(ctx, &globex)
			}))
			now := time.Now().UTC().Truncate(time.Second)
			n := 0
			// write stores a refresh token of grant g in session sid, with
			// a paired access token when paired; it returns the refresh
			// row and the access token's id.
			write := func(g, sid string, paired bool) (*gatehouse.OPRefreshToken, string) {
				t.Helper()
				n++
				exp := now.Add(30 * 24 * time.Hour)
				rt := &gatehouse.OPRefreshToken{
					ID: gatehouse.NewIDAt("ort", exp), TenantID: acme.ID, Hash: []byte{byte(n), 'h'}, ClientID: "app1",
					UserID: "usr_1", GrantID: g, SessionID: sid, Scopes: []string{"openid", "offline_access"},
					AuthTime: now, CreatedAt: now, ExpiresAt: exp,
				}
				if paired {
					rt.AccessExpiresAt = now.Add(time.Hour)
				}
				must(t, update(func(tx gatehouse.Tx) error { return tx.CreateOPRefreshToken(ctx, rt) }))
				return rt, gatehouse.PairedAccessID(rt.ID)
			}
			get := func(tenantID, id string) (*gatehouse.OPToken, error) {
				var tk *gatehouse.OPToken
				err := s.View(ctx, func(tx gatehouse.Tx) error {
					var err error
					tk, err = tx.GetOPToken(ctx, tenantID, id)
					return err
				})
				return tk, err
			}
			revoke := func(f gatehouse.OPTokenFilter) int {
				t.Helper()
				var c int
				must(t, update(func(tx gatehouse.Tx) error {
					var err error
					c, err = tx.RevokeOPTokens(ctx, acme.ID, f, now)
					return err
				}))
				return c
			}
			revoked := func(name, id string, want bool) {
				t.Helper()
				tk, err := get(acme.ID, id)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if (tk.RevokedAt != nil) != want {
					t.Fatalf("%s: revoked %v, want %v", name, tk.RevokedAt, want)
				}
			}

			rt, access := write("oar_1", "sid1", true)
			tk, err := get(acme.ID, access)
			must(t, err)
			want := gatehouse.OPToken{ID: access, TenantID: acme.ID, ClientID: "app1", UserID: "usr_1", GrantID: "oar_1",
				SessionID: "sid1", Scopes: rt.Scopes, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if tk.ID != want.ID || tk.TenantID != want.TenantID || tk.ClientID != want.ClientID || tk.UserID != want.UserID ||
				tk.GrantID != want.GrantID || tk.SessionID != want.SessionID || !slices.Equal(tk.Scopes, want.Scopes) ||
				!tk.CreatedAt.Equal(want.CreatedAt) || !tk.ExpiresAt.Equal(want.ExpiresAt) || tk.RevokedAt != nil {
				t.Fatalf("paired token %+v, want %+v", tk, want)
			}
			for _, c := range []struct{ name, tenant, id string }{
				{"another tenant", globex.ID, access},
				{"the refresh row's own id", acme.ID, rt.ID},
				{"a prefix alone", acme.ID, "oap_"},
			} {
				if _, err := get(c.tenant, c.id); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("%s: %v, want not found", c.name, err)
				}
			}
			// A refresh token without a paired access token has none.
			_, none := write("oar_2", "sid2", false)
			if _, err := get(acme.ID, none); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Errorf("refresh token without an access token: %v, want not found", err)
			}

			// Another client's revocation touches nothing.
			if c := revoke(gatehouse.OPTokenFilter{ClientID: "app2", TokenID: access}); c != 0 {
				t.Fatalf("another client revoked %d", c)
			}
			revoked("after another client's revocation", access, false)
			// The access token alone: the refresh token stays live.
			if c := revoke(gatehouse.OPTokenFilter{ClientID: "app1", TokenID: access}); c != 1 {
				t.Fatalf("revoked %d, want 1", c)
			}
			revoked("revoked alone", access, true)
			if c := revoke(gatehouse.OPTokenFilter{ClientID: "app1", TokenID: access}); c != 0 {
				t.Fatalf("revoked again: %d", c)
			}
			must(t, update(func(tx gatehouse.Tx) error { return tx.UseOPRefreshToken(ctx, acme.ID, rt.ID, now) }))
			// A spent (rotated) refresh token's access token lives on...
			rt3, access3 := write("oar_3", "sid3", true)
			must(t, update(func(tx gatehouse.Tx) error { return tx.UseOPRefreshToken(ctx, acme.ID, rt3.ID, now) }))
			revoked("of a rotated refresh token", access3, false)
			// ...until its grant is revoked (a replay, RFC 9700 section 4.14.2).
			revoke(gatehouse.OPTokenFilter{GrantID: "oar_3", UserID: "usr_1"})
			revoked("of a revoked grant", access3, true)
			// The refresh token by id, the session, the user, the client.
			for _, c := range []struct {
				name string
				f    func(rt *gatehouse.OPRefreshToken) gatehouse.OPTokenFilter
			}{
				{"refresh token", func(rt *gatehouse.OPRefreshToken) gatehouse.OPTokenFilter {
					return gatehouse.OPTokenFilter{ClientID: "app1", TokenID: rt.ID}
				}},
				{"session", func(rt *gatehouse.OPRefreshToken) gatehouse.OPTokenFilter {
					return gatehouse.OPTokenFilter{SessionID: rt.SessionID, UserID: "usr_1"}
				}},
				{"user", func(*gatehouse.OPRefreshToken) gatehouse.OPTokenFilter {
					return gatehouse.OPTokenFilter{UserID: "usr_1"}
				}},
				{"client", func(*gatehouse.OPRefreshToken) gatehouse.OPTokenFilter {
					return gatehouse.OPTokenFilter{ClientID: "app1"}
				}},
			} {
				rt, access := write("oar_"+c.name, "sid-"+c.name, true)
				revoked(c.name+", before", access, false)
				revoke(c.f(rt))
				revoked(c.name+", after", access, true)
			}

			// A paired access token needs a refresh row id it can name.
			bad := &gatehouse.OPRefreshToken{ID: "odd_1", TenantID: acme.ID, Hash: []byte("odd"), ClientID: "app1", UserID: "usr_1",
				GrantID: "oar_9", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour), AccessExpiresAt: now.Add(time.Minute)}
			if err := update(func(tx gatehouse.Tx) error { return tx.CreateOPRefreshToken(ctx, bad) }); err == nil {
				t.Fatal("a paired access token on a refresh id of another shape was written")
			}
		})
	}
}
