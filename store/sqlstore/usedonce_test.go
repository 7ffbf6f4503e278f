package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

type currentUseOncer interface {
	UseOnceIfCurrent(ctx context.Context, key string, expires time.Time, tenantID, connectionID string, connUpdated, tenantUpdated time.Time) (bool, error)
}

// TestUseOnceIfCurrent: the login guard's one statement records its key
// exactly when UseOnce would and the connection is as the login read it;
// otherwise it writes nothing (the key stays free for UseOnce).
func TestUseOnceIfCurrent(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			var err error
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			other := &gatehouse.Tenant{Slug: "other", Name: "Other"}
			c := &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "Okta", Enabled: true}
			off := &gatehouse.Connection{Type: gatehouse.ConnOIDC, Name: "Off", Enabled: false}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error {
				for _, x := range []*gatehouse.Tenant{te, other} {
					if err := tx.CreateTenant(ctx, x); err != nil {
						return err
					}
				}
				c.TenantID, off.TenantID = te.ID, te.ID
				if err := tx.CreateConnection(ctx, c); err != nil {
					return err
				}
				return tx.CreateConnection(ctx, off)
			}); err != nil {
				t.Fatal(err)
			}
			// Read back as a login reads them (the times as stored).
			if err := s.View(ctx, func(tx gatehouse.Tx) error {
				if te, err = tx.GetTenant(ctx, te.ID); err != nil {
					return err
				}
				if c, err = tx.GetConnectionByID(ctx, c.ID); err != nil {
					return err
				}
				off, err = tx.GetConnectionByID(ctx, off.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Hour)
			guard := func(key string, expires time.Time, tenantID string, conn *gatehouse.Connection, connUpdated, tenantUpdated time.Time) bool {
				t.Helper()
				var used bool
				if err := s.Update(ctx, func(tx gatehouse.Tx) error {
					var err error
					used, err = tx.(currentUseOncer).UseOnceIfCurrent(ctx, key, expires, tenantID, conn.ID, connUpdated, tenantUpdated)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return used
			}
			free := func(key string) bool {
				t.Helper()
				err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, key, later) })
				if err != nil && !gatehouse.IsCode(err, gatehouse.ECONFLICT) {
					t.Fatal(err)
				}
				return err == nil
			}
			cu, tu := c.UpdatedAt, te.UpdatedAt
			cases := []struct {
				name           string
				key            string
				tenantID       string
				conn           *gatehouse.Connection
				connUp, tenUp  time.Time
				want, wantFree bool // wantFree: UseOnce may still take the key afterwards
			}{
				{"current", "k1", te.ID, c, cu, tu, true, false},
				{"the same key again", "k1", te.ID, c, cu, tu, false, false},
				{"connection changed since", "k2", te.ID, c, cu.Add(-time.Microsecond), tu, false, true},
				{"tenant changed since", "k3", te.ID, c, cu, tu.Add(time.Microsecond), false, true},
				{"another tenant's", "k4", other.ID, c, cu, tu, false, true},
				{"disabled", "k5", te.ID, off, off.UpdatedAt, tu, false, true},
				{"unknown connection", "k6", te.ID, &gatehouse.Connection{ID: "con_nope"}, cu, tu, false, true},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if got := guard(tc.key, later, tc.tenantID, tc.conn, tc.connUp, tc.tenUp); got != tc.want {
						t.Errorf("used %v, want %v", got, tc.want)
					}
					if got := free(tc.key); got != tc.wantFree {
						t.Errorf("key free afterwards: %v, want %v", got, tc.wantFree)
					}
				})
			}
			// An expired key is taken over, as UseOnce takes it over.
			if !guard("k7", time.Now().Add(-time.Second), te.ID, c, cu, tu) || !guard("k7", later, te.ID, c, cu, tu) {
				t.Error("an expired key was not taken over")
			}
			if guard("k7", later, te.ID, c, cu, tu) {
				t.Error("a live key was taken again")
			}
		})
	}
}
