package main

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/migrations"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
	"github.com/pressly/goose/v3"
)

// migrationNames lists an engine's migration files.
func migrationNames(t *testing.T, engine string) []string {
	entries, err := fs.ReadDir(migrations.FS, engine)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestMigrationsMatchAcrossEngines: both engines have the same migrations,
// so a schema version means the same thing on either.
func TestMigrationsMatchAcrossEngines(t *testing.T) {
	if a, b := migrationNames(t, "sqlite"), migrationNames(t, "postgres"); !slices.Equal(a, b) {
		t.Fatalf("sqlite has %v, postgres %v", a, b)
	}
}

// TestUpgradeFromEachSchema: a database left at each earlier schema
// version, holding a tenant, is brought forward by Open (as at a start);
// the tenant survives; migrating again changes nothing; and
// `migrate --status` says the schema is up to date.
func TestUpgradeFromEachSchema(t *testing.T) {
	ctx := context.Background()
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			names := migrationNames(t, engine)
			for _, from := range names[:len(names)-1] {
				url := testdb.URL(t, engine)
				version, err := goose.NumericComponent(from)
				if err != nil {
					t.Fatal(err)
				}
				db := testdb.UpTo(t, ctx, engine, url, version)
				now := time.Now().UnixMicro()
				if _, err := db.ExecContext(ctx, `INSERT INTO tenants (id, slug, slug_key, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
					"ten_old", "old", "old", "Old Co", now, now); err != nil {
					t.Fatalf("seed at %s: %v", from, err)
				}
				db.Close()

				st, err := sqlstore.Open(ctx, url, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatalf("upgrade from %s: %v", path.Base(from), err)
				}
				err = st.View(ctx, func(tx gatehouse.Tx) error {
					te, err := tx.GetTenantBySlug(ctx, "old")
					if err == nil && te.Name != "Old Co" {
						t.Errorf("tenant after upgrade from %s: %+v", from, te)
					}
					return err
				})
				st.Close()
				if err != nil {
					t.Fatalf("after upgrade from %s: %v", from, err)
				}
				before, _ := sqlstore.Status(ctx, url)
				if err := sqlstore.Migrate(ctx, url); err != nil {
					t.Fatal(err)
				}
				after, _ := sqlstore.Status(ctx, url)
				if !slices.Equal(before, after) || len(after) != len(names) {
					t.Fatalf("migrating again changed the state:\n%v\n%v", before, after)
				}
				var out bytes.Buffer
				printMigrations(&out, after)
				if !strings.Contains(out.String(), "The schema is up to date.") || strings.Contains(out.String(), "pending") {
					t.Fatalf("status:\n%s", out.String())
				}
			}
		})
	}
}
