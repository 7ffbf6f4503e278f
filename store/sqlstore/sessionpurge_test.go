package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

func mustUpdate(t *testing.T, s *sqlstore.Store, fn func(tx gatehouse.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// TestSessionPurge: sessions an hour past their absolute expiry are
// deleted by the logins that create sessions next, a batch of 1,000 at
// most once a minute, or a second after a full batch; sessions expired
// less than an hour ago and live ones stay. On both engines.
func TestSessionPurge(t *testing.T) {
	ctx := context.Background()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			clk := &stepClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
			s, err := sqlstore.Open(ctx, testdb.URL(t, engine), sqlstore.Options{Clock: clk, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			te := gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			u := &gatehouse.User{Email: "ana@acme.com"}
			mustUpdate(t, s, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, &te); err != nil {
					return err
				}
				u.TenantID = te.ID
				return tx.CreateUser(ctx, u)
			})
			now := clk.Now()
			session := func(id string, expires time.Time) *gatehouse.Session {
				return &gatehouse.Session{ID: id, TenantID: te.ID, UserID: u.ID, IdleExpiry: expires, ExpiresAt: expires}
			}
			// 1,001 sessions two hours past expiry, one 30 minutes past
			// (within the hour kept), one live. The first insert runs the
			// purge (nothing to delete yet) and closes it for a minute.
			mustUpdate(t, s, func(tx gatehouse.Tx) error {
				for i := 0; i < 1001; i++ {
					if err := tx.CreateSession(ctx, session(fmt.Sprintf("old-%04d", i), now.Add(-2*time.Hour))); err != nil {
						return err
					}
				}
				if err := tx.CreateSession(ctx, session("recent", now.Add(-30*time.Minute))); err != nil {
					return err
				}
				return tx.CreateSession(ctx, session("live", now.Add(time.Hour)))
			})
			left := func(want int) {
				t.Helper()
				n := 0
				for i := 0; i < 1001; i++ {
					err := s.View(ctx, func(tx gatehouse.Tx) error {
						_, err := tx.GetSession(ctx, fmt.Sprintf("old-%04d", i))
						return err
					})
					if err == nil {
						n++
					} else if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
						t.Fatal(err)
					}
				}
				if n != want {
					t.Fatalf("%d expired sessions left, want %d", n, want)
				}
			}
			create := func(id string) {
				t.Helper()
				mustUpdate(t, s, func(tx gatehouse.Tx) error { return tx.CreateSession(ctx, session(id, clk.Now().Add(time.Hour))) })
			}
			create("live-2") // within the minute: no purge
			left(1001)
			clk.Add(61 * time.Second)
			create("live-3") // a full batch
			left(1)
			create("live-4") // within the second after it: no purge
			left(1)
			clk.Add(time.Second)
			create("live-5") // the rest of the backlog
			left(0)
			for _, id := range []string{"recent", "live", "live-2", "live-3", "live-4", "live-5"} {
				if err := s.View(ctx, func(tx gatehouse.Tx) error { _, err := tx.GetSession(ctx, id); return err }); err != nil {
					t.Errorf("session %s: %v", id, err)
				}
			}
		})
	}
}
