// Package testdb gives each test its own database: a fresh SQLite file, or a
// fresh PostgreSQL database on the server at GATEHOUSE_TEST_POSTGRES_URL
// (default the local server), dropped when the test ends.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// DefaultPostgresURL is the local server on these machines (trust auth).
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL returns the admin URL of the test server.
func PostgresURL() string {
	if u := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// SQLiteURL returns a database URL for a new SQLite file in t's temp dir.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "gatehouse.db")
}

// Postgres creates a new empty database for t and returns its URL. Without
// a server it skips t loudly, except under CI=true where it fails t: CI must
// never pass by skipping PostgreSQL.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is not reachable (%v); set GATEHOUSE_TEST_POSTGRES_URL or start the local server", redact(admin), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING POSTGRESQL TEST: " + msg)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gh_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("GATEHOUSE_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Engines lists the engines every storage-backed test runs on.
var Engines = []string{"sqlite", "postgres"}

// URL returns a fresh database URL for engine.
func URL(t testing.TB, engine string) string {
	switch engine {
	case "sqlite":
		return SQLiteURL(t)
	case "postgres":
		return Postgres(t)
	}
	t.Fatalf("unknown engine %q", engine)
	return ""
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return strings.TrimSpace(u.String())
}
