package sqlstore

import (
	"context"
	"fmt"
	"os"

	"github.com/gatehouse-sso/gatehouse"
)

// SQLitePath returns the database file of a SQLite URL ("" for PostgreSQL).
func SQLitePath(databaseURL string) (string, error) {
	d, target, err := parseURL(databaseURL)
	if err != nil || d != sqliteDialect {
		return "", err
	}
	return target, nil
}

// Backup writes a consistent copy of a SQLite database to path while it
// is in use (VACUUM INTO: one read transaction, so the copy is the
// database as of one instant, compacted; writers are not blocked in WAL
// mode). path must not exist. PostgreSQL is backed up with pg_dump
// (docs/operations.md).
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.d != sqliteDialect {
		return gatehouse.Errorf(gatehouse.EINVALID, "Online backup is for SQLite; back PostgreSQL up with pg_dump.")
	}
	if _, err := os.Stat(path); err == nil {
		return gatehouse.Errorf(gatehouse.ECONFLICT, "%s exists; choose a new file.", path)
	}
	// On this store's writer connection: reader connections are
	// query_only, which VACUUM INTO honours. VACUUM INTO only reads the
	// database (in WAL mode other connections and processes, a serving
	// Gatehouse included, keep writing); but writes through this Store
	// wait for it, so `gatehouse backup` opens a Store of its own.
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return s.d.mapErr(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `VACUUM INTO $1`, path); err != nil {
		_ = os.Remove(path)
		return s.d.mapErr(fmt.Errorf("backup to %s: %w", path, err))
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity_check; nil means "ok".
func (s *Store) IntegrityCheck(ctx context.Context) error {
	if s.d != sqliteDialect {
		return nil
	}
	var res string
	if err := s.writer.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return s.d.mapErr(err)
	}
	if res != "ok" {
		return gatehouse.Errorf(gatehouse.EINTERNAL, "integrity check: %s", res)
	}
	return nil
}
