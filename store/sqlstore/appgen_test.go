package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// TestAppWritesMoveCatalogGeneration: every write of an app, and the
// deletion of its tenant (which deletes it by cascade), moves the catalog
// generation that the provider's cache of the authorize endpoint's apps
// relies on (issue #10); reads do not.
func TestAppWritesMoveCatalogGeneration(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			a := &gatehouse.App{Name: "Wiki", RedirectURIs: []string{"https://wiki.example/cb"}}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateTenant(ctx, te); err != nil {
					return err
				}
				a.TenantID = te.ID
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				name  string
				write func(tx gatehouse.Tx) error
				moves bool
			}{
				{"create", func(tx gatehouse.Tx) error { return tx.CreateApp(ctx, a) }, true},
				{"read", func(tx gatehouse.Tx) error { _, err := tx.GetAppByClientID(ctx, te.ID, a.ClientID); return err }, false},
				{"update redirect URIs", func(tx gatehouse.Tx) error {
					a.RedirectURIs = []string{"https://wiki.example/new"}
					return tx.UpdateApp(ctx, a)
				}, true},
				{"rotate the secret", func(tx gatehouse.Tx) error {
					a.SecretHash = []byte("new digest")
					return tx.UpdateApp(ctx, a)
				}, true},
				{"delete", func(tx gatehouse.Tx) error { return tx.DeleteApp(ctx, te.ID, a.ID) }, true},
				{"create again", func(tx gatehouse.Tx) error { a.ID, a.ClientID = "", ""; return tx.CreateApp(ctx, a) }, true},
				{"delete the tenant", func(tx gatehouse.Tx) error { return tx.DeleteTenant(ctx, te.ID) }, true},
			}
			for _, st := range steps {
				gen := s.CatalogGeneration()
				if err := s.Update(ctx, st.write); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if moved := s.CatalogGeneration() != gen; moved != st.moves {
					t.Errorf("%s: the generation moved %v, want %v", st.name, moved, st.moves)
				}
			}
			if _, err := s.LookupAppByClientID(ctx, te.ID, a.ClientID); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Errorf("the deleted tenant's app: %v", err)
			}
		})
	}
}

// TestCatalogGenerationAfterTheWrite: the generation moves again once a
// transaction that wrote the catalog has ended, committed or rolled back,
// so a row read inside it (another request of the same batch) or between
// its bump and its commit is never served afterwards.
func TestCatalogGenerationAfterTheWrite(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, engine)
			te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateTenant(ctx, te) }); err != nil {
				t.Fatal(err)
			}
			for _, commit := range []bool{true, false} {
				var during uint64
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					te.Name = fmt.Sprintf("Acme %v", commit)
					if err := tx.UpdateTenant(ctx, te); err != nil {
						return err
					}
					during = s.CatalogGeneration() // a reader that loads now
					if !commit {
						return errors.New("roll back")
					}
					return nil
				})
				if commit != (err == nil) {
					t.Fatalf("commit %v: %v", commit, err)
				}
				if s.CatalogGeneration() == during {
					t.Errorf("commit %v: the generation did not move after the transaction", commit)
				}
			}
		})
	}
}
