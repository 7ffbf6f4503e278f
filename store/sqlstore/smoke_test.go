package sqlstore_test

import (
	"context"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

func TestSmoke(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s, err := sqlstore.Open(ctx, testdb.URL(t, engine), sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				te := &gatehouse.Tenant{Slug: "acme", Name: "Acme", Domains: []string{"Acme.com"}}
				if err := tx.CreateTenant(ctx, te); err != nil {
					return err
				}
				u := &gatehouse.User{TenantID: te.ID, Email: "Ana@Acme.com", Username: "ana", Attributes: map[string]any{"a": 1.0}}
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				err := tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Email: "ana@acme.com"})
				t.Logf("dup: %v field=%s", err, gatehouse.ErrorField(err))
				g := &gatehouse.Group{TenantID: te.ID, Name: "Eng"}
				if err := tx.CreateGroup(ctx, g); err != nil {
					return err
				}
				if err := tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: "admin"}); err != nil {
					return err
				}
				got, err := tx.GetUserByEmail(ctx, te.ID, "ANA@acme.com")
				if err != nil {
					return err
				}
				t.Logf("%+v", got)
				tt, err := tx.GetTenantByDomain(ctx, "acme.com")
				t.Logf("%+v %v", tt, err)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
