package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// Review (session 4): the version-checked one-statement writes under
// concurrency and across tenants, on both engines.
func TestReviewS4VersionCheckedWrites(t *testing.T) {
	type codeOfApp interface {
		CreateOPAuthCodeOfApp(ctx context.Context, r *gatehouse.OPAuthRequest, appID string, appUpdated time.Time) (bool, error)
		SpendOPAuthCodeOfApp(ctx context.Context, tenantID string, codeHash []byte, at time.Time, clientID, appID string, appUpdated time.Time) (*gatehouse.OPAuthRequest, error)
	}
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			acme := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			globex := &gatehouse.Tenant{Slug: "globex", Name: "Globex"}
			conn := &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "Okta", Enabled: true}
			a := &gatehouse.App{Name: "Wiki", ClientID: "shared", RedirectURIs: []string{"https://x/cb"}, SecretHash: []byte("a")}
			g := &gatehouse.App{Name: "Wiki", ClientID: "shared", RedirectURIs: []string{"https://x/cb"}, SecretHash: []byte("g")}
			must(t, s.Update(ctx, func(tx gatehouse.Tx) error {
				for _, te := range []*gatehouse.Tenant{acme, globex} {
					if err := tx.CreateTenant(ctx, te); err != nil {
						return err
					}
				}
				conn.TenantID, a.TenantID, g.TenantID = acme.ID, acme.ID, globex.ID
				if err := tx.CreateConnection(ctx, conn); err != nil {
					return err
				}
				if err := tx.CreateApp(ctx, a); err != nil {
					return err
				}
				return tx.CreateApp(ctx, g)
			}))
			must(t, s.View(ctx, func(tx gatehouse.Tx) (err error) {
				if acme, err = tx.GetTenant(ctx, acme.ID); err != nil {
					return err
				}
				if a, err = tx.GetAppByClientID(ctx, acme.ID, "shared"); err != nil {
					return err
				}
				if g, err = tx.GetAppByClientID(ctx, globex.ID, "shared"); err != nil {
					return err
				}
				conn, err = tx.GetConnectionByID(ctx, conn.ID)
				return err
			}))
			now := time.Now()
			newCode := func(tenantID, appID string, appUpdated time.Time, n int) (bool, []byte) {
				t.Helper()
				hash := []byte(fmt.Sprintf("code-%s-%d-%d", engine, n, now.UnixNano()))
				r := &gatehouse.OPAuthRequest{ID: gatehouse.NewID("oar"), TenantID: tenantID, ClientID: "shared", Request: []byte(`{}`),
					UserID: "usr_x", AuthTime: now, SessionID: "sid", Done: true, CodeHash: hash, ExpiresAt: now.Add(time.Minute)}
				var created bool
				must(t, s.Update(ctx, func(tx gatehouse.Tx) (err error) {
					created, err = tx.(codeOfApp).CreateOPAuthCodeOfApp(ctx, r, appID, appUpdated)
					return err
				}))
				return created, hash
			}
			spend := func(tenantID string, hash []byte, appID string, appUpdated time.Time) bool {
				var row *gatehouse.OPAuthRequest
				err := s.Update(ctx, func(tx gatehouse.Tx) (err error) {
					row, err = tx.(codeOfApp).SpendOPAuthCodeOfApp(ctx, tenantID, hash, time.Now(), "shared", appID, appUpdated)
					return err
				})
				if err != nil && !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Error(err)
				}
				return row != nil
			}

			t.Run("codes only for the app of the request's tenant", func(t *testing.T) {
				// globex's app of the same client id does not stand for
				// acme's, nor does another row with acme's app's version
				// (an app deleted and created again in the same
				// microsecond, or a clock gone back).
				if ok, _ := newCode(acme.ID, g.ID, g.UpdatedAt, 1); ok {
					t.Error("a code written for acme against globex's app")
				}
				if ok, _ := newCode(acme.ID, g.ID, a.UpdatedAt, 3); ok {
					t.Error("a code written for acme against another app row of the same version")
				}
				ok, hash := newCode(acme.ID, a.ID, a.UpdatedAt, 2)
				if !ok {
					t.Fatal("no code for the current app")
				}
				if spend(globex.ID, hash, g.ID, g.UpdatedAt) {
					t.Error("acme's code spent in globex")
				}
				if spend(acme.ID, hash, g.ID, g.UpdatedAt) || spend(acme.ID, hash, g.ID, a.UpdatedAt) {
					t.Error("acme's code spent against another app row")
				}
				if !spend(acme.ID, hash, a.ID, a.UpdatedAt) {
					t.Error("acme's code not spent for acme's app")
				}
			})
			t.Run("concurrent spends of one code", func(t *testing.T) {
				for round := range 3 {
					_, hash := newCode(acme.ID, a.ID, a.UpdatedAt, 10+round)
					const n = 12
					var wg sync.WaitGroup
					got := make([]bool, n)
					for i := range n {
						wg.Add(1)
						go func() { defer wg.Done(); got[i] = spend(acme.ID, hash, a.ID, a.UpdatedAt) }()
					}
					wg.Wait()
					if k := trues(got); k != 1 {
						t.Errorf("round %d: %d spends succeeded, want 1", round, k)
					}
				}
			})
			t.Run("concurrent logins with one flow key", func(t *testing.T) {
				type fused interface {
					UseOnceIfCurrent(ctx context.Context, key string, expires time.Time, tenantID, connectionID string, connUpdated, tenantUpdated time.Time) (bool, error)
				}
				for round := range 3 {
					key := fmt.Sprintf("flow-%s-%d-%d", engine, round, now.UnixNano())
					const n = 12
					var wg sync.WaitGroup
					got := make([]bool, n)
					for i := range n {
						wg.Add(1)
						go func() {
							defer wg.Done()
							err := s.Update(ctx, func(tx gatehouse.Tx) (err error) {
								got[i], err = tx.(fused).UseOnceIfCurrent(ctx, key, time.Now().Add(time.Hour), acme.ID, conn.ID, conn.UpdatedAt, acme.UpdatedAt)
								return err
							})
							if err != nil {
								t.Error(err)
							}
						}()
					}
					wg.Wait()
					if k := trues(got); k != 1 {
						t.Errorf("round %d: %d logins took the key, want 1", round, k)
					}
				}
				// An expired key of a connection changed since is not
				// taken over: nothing is written.
				key := "flow-expired-" + engine
				must(t, s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, key, time.Now().Add(-time.Second)) }))
				var took bool
				must(t, s.Update(ctx, func(tx gatehouse.Tx) (err error) {
					took, err = tx.(fused).UseOnceIfCurrent(ctx, key, time.Now().Add(time.Hour), acme.ID, conn.ID, conn.UpdatedAt.Add(-time.Microsecond), acme.UpdatedAt)
					return err
				}))
				if took {
					t.Error("an expired key taken over for a changed connection")
				}
				if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, key, time.Now().Add(time.Hour)) }); err != nil {
					t.Errorf("the expired key is no longer free: %v", err)
				}
			})
		})
	}
}

// trues counts the true values of got.
func trues(got []bool) int {
	k := 0
	for _, ok := range got {
		if ok {
			k++
		}
	}
	return k
}
