package sqlstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// answeredCreator is sqlstore's insert of an answered authorize request
// (package op: the request travelled sealed until its code).
type answeredCreator interface {
	CreateOPAuthCode(ctx context.Context, r *gatehouse.OPAuthRequest) (bool, error)
}

// TestCreateOPAuthCode: the first insert of an answered request wins; a
// second with the same id — concurrent or later — writes nothing and says
// so, and the transaction it runs in goes on (ON CONFLICT DO NOTHING, so
// PostgreSQL does not abort it); the code it carries is then spendable
// once. A request without a code is refused.
func TestCreateOPAuthCode(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			acme := gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateTenant(ctx, &acme) }); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			row := func(id, hash string) *gatehouse.OPAuthRequest {
				return &gatehouse.OPAuthRequest{ID: id, TenantID: acme.ID, ClientID: "app1", Request: []byte(`{"redirect_uri":"https://x/cb"}`),
					UserID: "usr_1", AuthTime: now, SessionID: "sid1", Done: true, CodeHash: []byte(hash), ExpiresAt: now.Add(time.Minute)}
			}
			create := func(r *gatehouse.OPAuthRequest) (bool, error) {
				var created bool
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					var err error
					if created, err = tx.(answeredCreator).CreateOPAuthCode(ctx, r); err != nil {
						return err
					}
					// The transaction goes on after a conflict.
					_, err = tx.GetOPAuthRequest(ctx, acme.ID, r.ID)
					return err
				})
				return created, err
			}
			id := gatehouse.NewID("oar")
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					created, err := create(row(id, "h"+string(rune('a'+i))))
					if err != nil {
						t.Error(err)
					}
					if created {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d inserts of one request won", wins.Load())
			}
			var stored *gatehouse.OPAuthRequest
			if err := s.View(ctx, func(tx gatehouse.Tx) (err error) {
				stored, err = tx.GetOPAuthRequest(ctx, acme.ID, id)
				return err
			}); err != nil || !stored.Done || stored.UserID != "usr_1" || len(stored.CodeHash) != 2 {
				t.Fatalf("stored %+v %v", stored, err)
			}
			spend := func() error {
				return s.Update(ctx, func(tx gatehouse.Tx) error {
					_, err := tx.UseOPAuthCode(ctx, acme.ID, stored.CodeHash, now)
					return err
				})
			}
			if err := spend(); err != nil {
				t.Fatal(err)
			}
			if err := spend(); !gatehouse.IsCode(err, gatehouse.ECONFLICT) {
				t.Fatalf("second use: %v", err)
			}
			pending := row(gatehouse.NewID("oar"), "")
			pending.CodeHash, pending.Done = nil, false
			if created, err := create(pending); err == nil || created {
				t.Fatal("a request without a code was stored")
			}
		})
	}
}
