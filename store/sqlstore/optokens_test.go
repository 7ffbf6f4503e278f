package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// TestOPTokensUpgrade: access and refresh tokens written before migration
// 00300 (ids by creation time, every index in place) come through it on
// both engines and keep working: read by id and by digest, spent,
// revoked by grant and by user, listed by session; and the expiry sweep,
// which now reads the primary key's range, takes the old rows a day past
// their expiry and never a live one whose (old-style) id sorts below the
// cutoff.
func TestOPTokensUpgrade(t *testing.T) {
	ctx := context.Background()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			url := testdb.URL(t, engine)
			db := testdb.UpTo(t, ctx, engine, url, 201)
			now := time.Now().UTC()
			us := func(t time.Time) int64 { return t.UnixMicro() }
			old := now.Add(-72 * time.Hour) // when the old rows were made
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`INSERT INTO tenants (id, slug, slug_key, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
				"ten_acme", "acme", "acme", "Acme", us(now), us(now))
			// Made three days ago, with ids of that time as NewID made them
			// then: live for 30 days, and expired two days ago.
			liveAT, deadAT := gatehouse.NewIDAt("oat", old), gatehouse.NewIDAt("oat", old)
			liveRT, deadRT := gatehouse.NewIDAt("ort", old), gatehouse.NewIDAt("ort", old)
			for _, r := range []struct {
				id  string
				exp time.Time
			}{{liveAT, now.Add(30 * 24 * time.Hour)}, {deadAT, now.Add(-48 * time.Hour)}} {
				exec(`INSERT INTO op_tokens (id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, expires_at)
					VALUES ($1, 'ten_acme', 'app1', 'usr_1', 'oar_1', 'sid1', '["openid"]', $2, $3)`, r.id, us(old), us(r.exp))
			}
			// liveRT was rotated from deadRT; newRT already has an id by
			// expiry (as 00300's provider makes them), in another grant.
			liveExp, newExp := now.Add(30*24*time.Hour), now.Add(20*24*time.Hour)
			newRT := gatehouse.NewIDAt("ort", newExp)
			for _, r := range []struct {
				id, hash, from, user, grant string
				exp                         time.Time
			}{
				{liveRT, "h-live", deadRT, "usr_1", "oar_1", liveExp},
				{deadRT, "h-dead", "", "usr_1", "oar_1", now.Add(-48 * time.Hour)},
				{newRT, "h-new", "", "usr_9", "oar_9", newExp},
			} {
				exec(`INSERT INTO op_refresh_tokens (id, tenant_id, hash, client_id, user_id, grant_id, session_id, rotated_from, scopes, amr, auth_time, created_at, expires_at)
					VALUES ($1, 'ten_acme', $2, 'app1', $3, $4, 'sid1', $5, '["openid","offline_access"]', '["pwd"]', $6, $6, $7)`,
					r.id, []byte(r.hash), r.user, r.grant, r.from, us(old), us(r.exp))
			}
			db.Close()

			s, err := sqlstore.Open(ctx, url, sqlstore.Options{Logger: quiet})
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				tk, err := tx.GetOPToken(ctx, "ten_acme", liveAT)
				if err != nil {
					return err
				}
				if tk.UserID != "usr_1" || tk.GrantID != "oar_1" || tk.SessionID != "sid1" || !slices.Equal(tk.Scopes, []string{"openid"}) ||
					tk.CreatedAt.UnixMicro() != us(old) || tk.RevokedAt != nil {
					t.Errorf("access token after the upgrade: %+v", tk)
				}
				rt, err := tx.GetOPRefreshToken(ctx, "ten_acme", []byte("h-live"))
				if err != nil {
					return err
				}
				if !slices.Equal(rt.AMR, []string{"pwd"}) || rt.UsedAt != nil || !rt.ExpiresAt.Equal(time.UnixMicro(us(liveExp)).UTC()) {
					t.Errorf("refresh token after the upgrade: %+v", rt)
				}
				// 00330: the old id now sorts by expiry (its time part is
				// the expiry's, its random part kept); so does the id it
				// was rotated from; an id by expiry already is unchanged.
				floor := gatehouse.IDFloor("ort", liveExp)
				if rt.ID[:14] != floor[:14] || rt.ID[14:] != liveRT[14:] {
					t.Errorf("refresh token id %s, want %s…%s", rt.ID, floor[:14], liveRT[14:])
				}
				if from := gatehouse.IDFloor("ort", now.Add(-48*time.Hour)); rt.RotatedFrom[:14] != from[:14] || rt.RotatedFrom[14:] != deadRT[14:] {
					t.Errorf("rotated from %s, want %s…%s", rt.RotatedFrom, from[:14], deadRT[14:])
				}
				if nrt, err := tx.GetOPRefreshToken(ctx, "ten_acme", []byte("h-new")); err != nil || nrt.ID != newRT {
					t.Errorf("refresh token made by expiry: %+v %v, want id %s", nrt, err, newRT)
				}
				liveRT = rt.ID
				clients, err := tx.ListOPSessionClients(ctx, "ten_acme", "sid1")
				if err == nil && !slices.Equal(clients, []string{"app1"}) {
					t.Errorf("session clients %v", clients)
				}
				return err
			}))
			// The sweep: a new access token of the tenant triggers it.
			sqlstore.AllowOPPurge(s)
			exp := now.Add(time.Hour)
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.CreateOPToken(ctx, &gatehouse.OPToken{ID: gatehouse.NewIDAt("oat", exp), TenantID: "ten_acme", ClientID: "app1",
					UserID: "usr_2", GrantID: "oar_2", SessionID: "sid2", CreatedAt: now, ExpiresAt: exp})
			}))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				for id, kept := range map[string]bool{liveAT: true, deadAT: false} {
					if _, err := tx.GetOPToken(ctx, "ten_acme", id); (err == nil) != kept {
						t.Errorf("access token %s (kept %v) after the sweep: %v", id, kept, err)
					}
				}
				for hash, kept := range map[string]bool{"h-live": true, "h-dead": false} {
					if _, err := tx.GetOPRefreshToken(ctx, "ten_acme", []byte(hash)); (err == nil) != kept {
						t.Errorf("refresh token %s (kept %v) after the sweep: %v", hash, kept, err)
					}
				}
				return nil
			}))
			// Spent, then its grant revoked through its user.
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.UseOPRefreshToken(ctx, "ten_acme", liveRT, now)
			}))
			var n int
			must(t, s.Update(ctx, func(tx gatehouse.Tx) (err error) {
				n, err = tx.RevokeOPTokens(ctx, "ten_acme", gatehouse.OPTokenFilter{GrantID: "oar_1", UserID: "usr_1"}, now)
				return err
			}))
			if n != 2 {
				t.Errorf("revoked %d tokens of the grant, want 2", n)
			}
			s.Close()

			// Down to 00201 and up again: the rows stay, every column.
			// step is in the statements' text: pgx keeps prepared statements
			// by text, and the column types change on the way down and up.
			rows := func(db *sql.DB, step string) string {
				t.Helper()
				var out []string
				for _, q := range []string{
					`SELECT id, tenant_id, client_id, user_id, grant_id, session_id, scopes, created_at, expires_at, COALESCE(revoked_at, -1) FROM op_tokens ORDER BY id`,
					`SELECT id, tenant_id, hash, client_id, user_id, grant_id, session_id, rotated_from, scopes, amr, auth_time, created_at, expires_at,
						COALESCE(used_at, -1), COALESCE(revoked_at, -1) FROM op_refresh_tokens ORDER BY id`,
				} {
					rs, err := db.QueryContext(ctx, q+" -- "+step)
					if err != nil {
						t.Fatal(err)
					}
					cols, _ := rs.Columns()
					for rs.Next() {
						vals := make([]any, len(cols))
						ptrs := make([]any, len(cols))
						for i := range vals {
							ptrs[i] = &vals[i]
						}
						if err := rs.Scan(ptrs...); err != nil {
							t.Fatal(err)
						}
						out = append(out, fmt.Sprintf("%v", vals))
					}
					rs.Close()
				}
				return strings.Join(out, "\n")
			}
			db, p := testdb.Migrator(t, engine, url)
			defer db.Close()
			before := rows(db, "before")
			if strings.Count(before, "\n") != 3 { // two access tokens, two refresh tokens
				t.Fatalf("rows before going down:\n%s", before)
			}
			if _, err := p.DownTo(ctx, 201); err != nil {
				t.Fatalf("down to 00201: %v", err)
			}
			if got := rows(db, "down"); got != before {
				t.Fatalf("rows at 00201:\n%s\nwant\n%s", got, before)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
			if got := rows(db, "up"); got != before {
				t.Fatalf("rows up again:\n%s\nwant\n%s", got, before)
			}
		})
	}
}

// TestOPTokenSweep: tokens made by the provider (ids by expiry) go a day
// after their expiry and not before, on both engines; revocation by grant
// and user, by user alone, and the clients of a user's session read the
// one index of each table.
func TestOPTokenSweep(t *testing.T) {
	ctx := context.Background()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			s := openStore(t, engine)
			acme := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			now := time.Now().UTC()
			type row struct {
				id, user, grant, sid string
				exp                  time.Time
			}
			rows := []row{
				{user: "usr_1", grant: "oar_1", sid: "sid1", exp: now.Add(-25 * time.Hour)}, // swept
				{user: "usr_1", grant: "oar_1", sid: "sid1", exp: now.Add(-23 * time.Hour)}, // kept: within the day
				{user: "usr_1", grant: "oar_2", sid: "sid2", exp: now.Add(time.Hour)},
				{user: "usr_2", grant: "oar_3", sid: "sid3", exp: now.Add(time.Hour)},
			}
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, acme); err != nil {
					return err
				}
				for i := range rows {
					r := &rows[i]
					r.id = gatehouse.NewIDAt("oat", r.exp)
					if err := tx.CreateOPToken(ctx, &gatehouse.OPToken{ID: r.id, TenantID: acme.ID, ClientID: "app" + r.sid, UserID: r.user,
						GrantID: r.grant, SessionID: r.sid, CreatedAt: now, ExpiresAt: r.exp}); err != nil {
						return err
					}
					if err := tx.CreateOPRefreshToken(ctx, &gatehouse.OPRefreshToken{ID: gatehouse.NewIDAt("ort", r.exp), TenantID: acme.ID,
						Hash: []byte(r.id), ClientID: "app" + r.sid, UserID: r.user, GrantID: r.grant, SessionID: r.sid,
						AuthTime: now, CreatedAt: now, ExpiresAt: r.exp}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sqlstore.AllowOPPurge(s)
			exp := now.Add(time.Hour)
			if err := s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.CreateOPToken(ctx, &gatehouse.OPToken{ID: gatehouse.NewIDAt("oat", exp), TenantID: acme.ID, ClientID: "app9",
					UserID: "usr_9", CreatedAt: now, ExpiresAt: exp})
			}); err != nil {
				t.Fatal(err)
			}
			err = s.View(ctx, func(tx gatehouse.Tx) error {
				for i, r := range rows {
					_, err := tx.GetOPToken(ctx, acme.ID, r.id)
					_, rerr := tx.GetOPRefreshToken(ctx, acme.ID, []byte(r.id))
					if kept := i > 0; (err == nil) != kept || (rerr == nil) != kept {
						t.Errorf("row %d (expiry %v): access %v, refresh %v; want kept=%v", i, r.exp, err, rerr, kept)
					}
				}
				type lister interface {
					ListOPUserSessionClients(ctx context.Context, tenantID, userID, sessionID string) ([]string, error)
				}
				for _, tc := range []struct{ user, sid, want string }{{"usr_1", "sid2", "appsid2"}, {"usr_2", "sid2", ""}, {"usr_2", "sid3", "appsid3"}} {
					got, err := tx.(lister).ListOPUserSessionClients(ctx, acme.ID, tc.user, tc.sid)
					if err != nil {
						return err
					}
					if strings.Join(got, ",") != tc.want {
						t.Errorf("clients of %s's session %s: %v, want %q", tc.user, tc.sid, got, tc.want)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				f    gatehouse.OPTokenFilter
				want int
			}{
				{gatehouse.OPTokenFilter{GrantID: "oar_2", UserID: "usr_2"}, 0}, // another user's grant: nothing
				{gatehouse.OPTokenFilter{GrantID: "oar_2", UserID: "usr_1"}, 2},
				{gatehouse.OPTokenFilter{UserID: "usr_1"}, 2}, // the rest of usr_1's (row 1)
				{gatehouse.OPTokenFilter{GrantID: "oar_3"}, 2},
			} {
				var n int
				if err := s.Update(ctx, func(tx gatehouse.Tx) (err error) {
					n, err = tx.RevokeOPTokens(ctx, acme.ID, tc.f, now)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if n != tc.want {
					t.Errorf("RevokeOPTokens(%+v) = %d, want %d", tc.f, n, tc.want)
				}
			}
		})
	}
}

// TestReadRefreshGrant: the refresh grant's one read is GetAppByClientID,
// GetOPRefreshToken and GetUserWithoutGroups of the token's user (nil when
// the user is deleted or unknown), changes nothing, and finds nothing
// across tenants or for an unknown client or token, on both engines.
func TestReadRefreshGrant(t *testing.T) {
	ctx := context.Background()
	type reader interface {
		ReadRefreshGrant(ctx context.Context, tenantID, clientID string, hash []byte) (*gatehouse.App, *gatehouse.OPRefreshToken, *gatehouse.User, error)
	}
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			s := openStore(t, engine)
			acme, globex := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}, &gatehouse.Tenant{Slug: "globex", Name: "Globex"}
			ana := &gatehouse.User{Email: "ana@acme.test", Username: "ana", DisplayName: "Ana", Status: gatehouse.StatusActive,
				Source: gatehouse.SourceAdmin, Attributes: map[string]any{"dept": "ops"}}
			bob := &gatehouse.User{Email: "bob@acme.test", Username: "bob", Status: gatehouse.StatusActive, Source: gatehouse.SourceAdmin}
			app := &gatehouse.App{Name: "Wiki", ClientID: "cli_1", RedirectURIs: []string{"https://x/cb"}, SecretHash: []byte("s")}
			now := time.Now().UTC().Truncate(time.Microsecond)
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				for _, te := range []*gatehouse.Tenant{acme, globex} {
					if err := tx.CreateTenant(ctx, te); err != nil {
						return err
					}
				}
				for _, u := range []*gatehouse.User{ana, bob} {
					u.TenantID = acme.ID
					if err := tx.CreateUser(ctx, u); err != nil {
						return err
					}
				}
				app.TenantID = acme.ID
				if err := tx.CreateApp(ctx, app); err != nil {
					return err
				}
				for hash, user := range map[string]string{"h-ana": ana.ID, "h-bob": bob.ID, "h-nobody": "usr_none"} {
					exp := now.Add(time.Hour)
					if err := tx.CreateOPRefreshToken(ctx, &gatehouse.OPRefreshToken{ID: gatehouse.NewIDAt("ort", exp), TenantID: acme.ID,
						Hash: []byte(hash), ClientID: "cli_other", UserID: user, GrantID: "oar_" + hash, SessionID: "sid",
						Scopes: []string{"openid"}, AMR: []string{"pwd"}, AuthTime: now, CreatedAt: now, ExpiresAt: exp}); err != nil {
						return err
					}
				}
				return tx.DeleteUser(ctx, acme.ID, bob.ID)
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				tenant, client, hash string
				user                 bool // a live user is read
			}{
				{acme.ID, "cli_1", "h-ana", true},
				{acme.ID, "cli_1", "h-bob", false},    // deleted
				{acme.ID, "cli_1", "h-nobody", false}, // never was
				{acme.ID, "cli_1", "h-none", false},
				{acme.ID, "cli_none", "h-ana", false},
				{globex.ID, "cli_1", "h-ana", false},
			} {
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					gotApp, gotTok, gotUser, err := tx.(reader).ReadRefreshGrant(ctx, tc.tenant, tc.client, []byte(tc.hash))
					wantApp, appErr := tx.GetAppByClientID(ctx, tc.tenant, tc.client)
					wantTok, tokErr := tx.GetOPRefreshToken(ctx, tc.tenant, []byte(tc.hash))
					if appErr != nil || tokErr != nil {
						if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) || gotApp != nil || gotTok != nil || gotUser != nil {
							t.Errorf("%+v: %v %v %v %v, want ENOTFOUND", tc, gotApp, gotTok, gotUser, err)
						}
						return nil
					}
					if err != nil {
						return err
					}
					if !reflect.DeepEqual(gotApp, wantApp) || !reflect.DeepEqual(gotTok, wantTok) {
						t.Errorf("%+v: app %+v token %+v, want %+v %+v", tc, gotApp, gotTok, wantApp, wantTok)
					}
					if (gotUser != nil) != tc.user {
						t.Errorf("%+v: user %+v", tc, gotUser)
					}
					if tc.user {
						want, err := tx.GetUser(ctx, tc.tenant, gotTok.UserID)
						if err != nil {
							return err
						}
						want.Groups = nil
						if !reflect.DeepEqual(gotUser, want) {
							t.Errorf("%+v: user %+v, want %+v", tc, gotUser, want)
						}
					}
					if gotTok.UsedAt != nil || gotTok.RevokedAt != nil {
						t.Errorf("%+v: the read changed the token: %+v", tc, gotTok)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
