package testdb

import (
	"context"
	"database/sql"
	"io/fs"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/store/migrations"
	"github.com/pressly/goose/v3"
)

// UpTo applies engine's embedded migrations to the database at url (from
// URL) up to and including version, and returns the database open, with
// no store in between: upgrade tests seed rows at an older schema, close
// it, and let sqlstore.Open bring it forward. The caller imports the
// store, which registers the "sqlite" driver.
func UpTo(t testing.TB, ctx context.Context, engine, url string, version int64) *sql.DB {
	t.Helper()
	db, p := Migrator(t, engine, url)
	if _, err := p.UpTo(ctx, version); err != nil {
		t.Fatalf("%s: migrate up to %d: %v", engine, version, err)
	}
	return db
}

// Migrator opens the database at url and returns it with goose over
// engine's embedded migrations, for tests that go down and up.
func Migrator(t testing.TB, engine, url string) (*sql.DB, *goose.Provider) {
	t.Helper()
	driver, dsn, dialect := "pgx", url, goose.DialectPostgres
	if engine == "sqlite" {
		driver, dsn, dialect = "sqlite", strings.TrimPrefix(url, "sqlite://"), goose.DialectSQLite3
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(migrations.FS, engine)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(dialect, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	return db, p
}
