package sqlstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// TestOPState covers the OpenID provider's tables on both engines: single
// use of codes and refresh tokens under concurrency, revocation filters,
// tenant isolation and the purge of expired rows.
func TestOPState(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			var acme, globex gatehouse.Tenant
			acme.Slug, acme.Name = "acme", "Acme"
			globex.Slug, globex.Name = "globex", "Globex"
			update := func(fn func(tx gatehouse.Tx) error) error { return s.Update(ctx, fn) }
			must(t, update(func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, &acme); err != nil {
					return err
				}
				return tx.CreateTenant(ctx, &globex)
			}))
			now := time.Now().UTC()

			// Auth request and its code.
			ar := &gatehouse.OPAuthRequest{ID: gatehouse.NewID("oar"), TenantID: acme.ID, ClientID: "app1",
				Request: []byte(`{"redirect_uri":"https://x/cb"}`), ExpiresAt: now.Add(time.Hour)}
			must(t, update(func(tx gatehouse.Tx) error { return tx.CreateOPAuthRequest(ctx, ar) }))
			// No code before the request is done.
			if err := update(func(tx gatehouse.Tx) error {
				return tx.SetOPAuthCode(ctx, acme.ID, ar.ID, []byte("h1"), now.Add(time.Minute))
			}); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Fatalf("code on a pending request: %v", err)
			}
			ar.UserID, ar.AuthTime, ar.SessionID, ar.Done = "usr_1", now, "sid1", true
			must(t, update(func(tx gatehouse.Tx) error { return tx.CompleteOPAuthRequest(ctx, ar) }))
			must(t, update(func(tx gatehouse.Tx) error {
				return tx.SetOPAuthCode(ctx, acme.ID, ar.ID, []byte("h1"), now.Add(time.Minute))
			}))
			if err := update(func(tx gatehouse.Tx) error {
				return tx.SetOPAuthCode(ctx, acme.ID, ar.ID, []byte("h2"), now.Add(time.Minute))
			}); err == nil {
				t.Fatal("a second code for one request")
			}
			if err := s.View(ctx, func(tx gatehouse.Tx) error {
				got, err := tx.GetOPAuthRequest(ctx, acme.ID, ar.ID)
				if err == nil && (got.UserID != "usr_1" || !got.Done || string(got.CodeHash) != "h1" || got.SessionID != "sid1") {
					t.Errorf("read back %+v", got)
				}
				if _, err := tx.GetOPAuthRequest(ctx, globex.ID, ar.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("other tenant reads the request: %v", err)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if err := update(func(tx gatehouse.Tx) error {
				_, err := tx.UseOPAuthCode(ctx, globex.ID, []byte("h1"), now)
				return err
			}); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Fatalf("code used at another tenant: %v", err)
			}
			// 20 concurrent uses: exactly one wins, the others see reuse.
			var wins, conflicts int
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var row *gatehouse.OPAuthRequest
					err := s.Update(ctx, func(tx gatehouse.Tx) error {
						var err error
						row, err = tx.UseOPAuthCode(ctx, acme.ID, []byte("h1"), now)
						if gatehouse.IsCode(err, gatehouse.ECONFLICT) {
							return nil
						}
						row = nil
						return err
					})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil && row == nil:
						wins++
					case err == nil && row != nil && row.ID == ar.ID:
						conflicts++
					default:
						t.Errorf("use code: %v", err)
					}
				}()
			}
			wg.Wait()
			if wins != 1 || conflicts != 19 {
				t.Fatalf("concurrent code use: %d wins, %d conflicts", wins, conflicts)
			}

			// Tokens of one grant, and one of another user.
			tok := func(id, user, grant, sid string) *gatehouse.OPToken {
				return &gatehouse.OPToken{ID: id, TenantID: acme.ID, ClientID: "app1", UserID: user, GrantID: grant,
					SessionID: sid, Scopes: []string{"openid"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			}
			rt := &gatehouse.OPRefreshToken{ID: "ort_1", TenantID: acme.ID, Hash: []byte("r1"), ClientID: "app1", UserID: "usr_1",
				GrantID: ar.ID, SessionID: "sid1", Scopes: []string{"openid", "offline_access"}, AMR: []string{"pwd"},
				AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			must(t, update(func(tx gatehouse.Tx) error {
				for _, tk := range []*gatehouse.OPToken{tok("oat_1", "usr_1", ar.ID, "sid1"), tok("oat_2", "usr_2", "oar_x", "sid2"), tok("oat_3", "", "", "")} {
					if err := tx.CreateOPToken(ctx, tk); err != nil {
						return err
					}
				}
				return tx.CreateOPRefreshToken(ctx, rt)
			}))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				got, err := tx.GetOPRefreshToken(ctx, acme.ID, []byte("r1"))
				if err != nil {
					return err
				}
				if got.ID != "ort_1" || len(got.AMR) != 1 || len(got.Scopes) != 2 || got.UsedAt != nil {
					t.Errorf("refresh token read back %+v", got)
				}
				if _, err := tx.GetOPRefreshToken(ctx, globex.ID, []byte("r1")); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("refresh token of another tenant: %v", err)
				}
				if _, err := tx.GetOPToken(ctx, globex.ID, "oat_1"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("token of another tenant: %v", err)
				}
				clients, err := tx.ListOPSessionClients(ctx, acme.ID, "sid1")
				if err == nil && (len(clients) != 1 || clients[0] != "app1") {
					t.Errorf("session clients %v", clients)
				}
				return err
			}))
			// Rotation: of 10 concurrent uses, one wins.
			wins = 0
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := update(func(tx gatehouse.Tx) error { return tx.UseOPRefreshToken(ctx, acme.ID, "ort_1", now) })
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						wins++
					} else if !gatehouse.IsCode(err, gatehouse.ECONFLICT) {
						t.Errorf("use refresh: %v", err)
					}
				}()
			}
			wg.Wait()
			if wins != 1 {
				t.Fatalf("concurrent refresh use: %d wins", wins)
			}
			// Revocation by grant: the grant's access and refresh tokens only.
			var n int
			if err := update(func(tx gatehouse.Tx) error {
				if _, err := tx.RevokeOPTokens(ctx, acme.ID, gatehouse.OPTokenFilter{}, now); err == nil {
					t.Error("an empty filter revoked")
				}
				var err error
				n, err = tx.RevokeOPTokens(ctx, acme.ID, gatehouse.OPTokenFilter{GrantID: ar.ID}, now)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Fatalf("revoked %d, want 2", n)
			}
			must(t, update(func(tx gatehouse.Tx) error {
				// Another tenant's filter changes nothing here.
				if m, err := tx.RevokeOPTokens(ctx, globex.ID, gatehouse.OPTokenFilter{UserID: "usr_2"}, now); err != nil || m != 0 {
					t.Errorf("revoke at globex: %d %v", m, err)
				}
				m, err := tx.RevokeOPTokens(ctx, acme.ID, gatehouse.OPTokenFilter{UserID: "usr_2", ClientID: "app1"}, now)
				if m != 1 {
					t.Errorf("revoke by user: %d", m)
				}
				return err
			}))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				for id, revoked := range map[string]bool{"oat_1": true, "oat_2": true, "oat_3": false} {
					tk, err := tx.GetOPToken(ctx, acme.ID, id)
					if err != nil {
						return err
					}
					if (tk.RevokedAt != nil) != revoked {
						t.Errorf("%s revoked=%v", id, tk.RevokedAt != nil)
					}
				}
				return nil
			}))
			// Rows a day past expiry go when the next request is created.
			old := &gatehouse.OPAuthRequest{ID: gatehouse.NewID("oar"), TenantID: acme.ID, ClientID: "app1", Request: []byte(`{}`),
				ExpiresAt: now.Add(-48 * time.Hour)}
			must(t, update(func(tx gatehouse.Tx) error { return tx.CreateOPAuthRequest(ctx, old) }))
			// Purges run at most once a minute per process: without the
			// reset, the next request leaves the expired one in place.
			must(t, update(func(tx gatehouse.Tx) error {
				return tx.CreateOPAuthRequest(ctx, &gatehouse.OPAuthRequest{ID: gatehouse.NewID("oar"), TenantID: acme.ID,
					ClientID: "app1", Request: []byte(`{}`), ExpiresAt: now.Add(time.Hour)})
			}))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				if _, err := tx.GetOPAuthRequest(ctx, acme.ID, old.ID); err != nil {
					t.Errorf("purged twice within a minute: %v", err)
				}
				return nil
			}))
			sqlstore.AllowOPPurge(s)
			must(t, update(func(tx gatehouse.Tx) error {
				return tx.CreateOPAuthRequest(ctx, &gatehouse.OPAuthRequest{ID: gatehouse.NewID("oar"), TenantID: acme.ID,
					ClientID: "app1", Request: []byte(`{}`), ExpiresAt: now.Add(time.Hour)})
			}))
			must(t, s.View(ctx, func(tx gatehouse.Tx) error {
				if _, err := tx.GetOPAuthRequest(ctx, acme.ID, old.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Errorf("expired request not purged: %v", err)
				}
				_, err := tx.GetOPAuthRequest(ctx, acme.ID, ar.ID)
				return err
			}))
		})
	}
}
