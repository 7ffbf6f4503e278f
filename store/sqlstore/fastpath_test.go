package sqlstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

type groupRefGetter interface {
	GetGroupRef(ctx context.Context, tenantID, id string) (*gatehouse.Group, error)
	GetGroupRefByName(ctx context.Context, tenantID, name string) (*gatehouse.Group, error)
}

// TestGetGroupRefByName: the same group as GetGroupByName (names folded),
// without the member count, and ENOTFOUND for an unknown name or another
// tenant's group; GetGroupRef likewise by id.
func TestGetGroupRefByName(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			g := &gatehouse.Group{Name: "Everyone"}
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, te); err != nil {
					return err
				}
				g.TenantID = te.ID
				if err := tx.CreateGroup(ctx, g); err != nil {
					return err
				}
				u := &gatehouse.User{TenantID: te.ID, Email: "ana@acme.com"}
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: "admin"})
			})
			if err != nil {
				t.Fatal(err)
			}
			err = s.View(ctx, func(tx gatehouse.Tx) error {
				fast, ok := tx.(groupRefGetter)
				if !ok {
					return fmt.Errorf("%T has no GetGroupRefByName", tx)
				}
				full, err := tx.GetGroupByName(ctx, te.ID, "everyone")
				if err != nil {
					return err
				}
				ref, err := fast.GetGroupRefByName(ctx, te.ID, " EVERYONE ")
				if err != nil {
					return err
				}
				if full.MemberCount != 1 || ref.MemberCount != 0 {
					return fmt.Errorf("member counts %d %d", full.MemberCount, ref.MemberCount)
				}
				ref.MemberCount = full.MemberCount
				if *ref != *full {
					return fmt.Errorf("ref %+v\nfull %+v", ref, full)
				}
				byID, err := fast.GetGroupRef(ctx, te.ID, g.ID)
				if err != nil {
					return err
				}
				byID.MemberCount = full.MemberCount
				if *byID != *full {
					return fmt.Errorf("by id %+v\nfull %+v", byID, full)
				}
				if _, err := fast.GetGroupRef(ctx, "ten_other", g.ID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					return fmt.Errorf("group of another tenant: %v", err)
				}
				if _, err := fast.GetGroupRefByName(ctx, te.ID, "nobody"); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					return fmt.Errorf("unknown group: %v", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLookupSCIMToken: the same token as GetSCIMTokenByHash, ENOTFOUND for
// an unknown digest, and ENOTFOUND on the next lookup after the token is
// deleted (no caching delays revocation).
func TestLookupSCIMToken(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			tok := &gatehouse.SCIMToken{Name: "okta", Hash: []byte("0123456789abcdef0123456789abcdef")}
			var want *gatehouse.SCIMToken
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, te); err != nil {
					return err
				}
				tok.TenantID = te.ID
				if err := tx.CreateSCIMToken(ctx, tok); err != nil {
					return err
				}
				var err error
				want, err = tx.GetSCIMTokenByHash(ctx, tok.Hash)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.LookupSCIMToken(ctx, tok.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if _, err := s.LookupSCIMToken(ctx, []byte("no such digest")); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Errorf("unknown digest: %v", err)
			}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteSCIMToken(ctx, te.ID, tok.ID) }); err != nil {
				t.Fatal(err)
			}
			if _, err := s.LookupSCIMToken(ctx, tok.Hash); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Errorf("after deletion: %v", err)
			}
		})
	}
}

// BenchmarkSCIMTokenLookup: SCIM's per-request token read, in a View as
// before and with LookupSCIMToken.
func BenchmarkSCIMTokenLookup(b *testing.B) {
	for _, engine := range testdb.Engines {
		ctx := context.Background()
		s, err := sqlstore.Open(ctx, testdb.URL(b, engine), sqlstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		tok := &gatehouse.SCIMToken{Name: "okta", Hash: []byte("0123456789abcdef0123456789abcdef")}
		err = s.Update(ctx, func(tx gatehouse.Tx) error {
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			if err := tx.CreateTenant(ctx, te); err != nil {
				return err
			}
			tok.TenantID = te.ID
			return tx.CreateSCIMToken(ctx, tok)
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(engine+"/view", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := s.View(ctx, func(tx gatehouse.Tx) error { _, err := tx.GetSCIMTokenByHash(ctx, tok.Hash); return err }); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(engine+"/lookup", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := s.LookupSCIMToken(ctx, tok.Hash); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
