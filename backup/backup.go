// Package backup is `gatehouse backup` and `gatehouse restore` for SQLite:
// an online, consistent copy of the live database (VACUUM INTO) and its
// restoration into a fresh data directory. PostgreSQL has pg_dump and
// pg_restore (docs/operations.md).
//
// The database holds connection secrets and signing keys sealed under the
// root key: a backup is useless without the root key it was made under
// (GATEHOUSE_ROOT_KEY or <data dir>/root.key), which is kept apart from
// it on purpose and must be backed up too.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// ErrPostgres is returned for a PostgreSQL database URL.
var ErrPostgres = errors.New("PostgreSQL is backed up with pg_dump and restored with pg_restore; see docs/operations.md")

var quiet = sqlstore.Options{Logger: slog.New(slog.DiscardHandler)}

// Backup copies the SQLite database at databaseURL to dst while it may be
// serving, then checks the copy.
func Backup(ctx context.Context, databaseURL, dst string) error {
	path, err := sqlstore.SQLitePath(databaseURL)
	if err != nil {
		return err
	}
	if path == "" {
		return ErrPostgres
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no database at %s: %w", path, err)
	}
	st, err := sqlstore.Open(ctx, databaseURL, quiet)
	if err != nil {
		return err
	}
	defer st.Close()
	abs, err := filepath.Abs(dst)
	if err != nil {
		return err
	}
	if err := st.Backup(ctx, abs); err != nil {
		return err
	}
	return check(ctx, abs)
}

// check opens a copy read-write (it is ours) and runs the integrity check.
func check(ctx context.Context, path string) error {
	st, err := sqlstore.Open(ctx, "sqlite://"+path, quiet)
	if err != nil {
		return fmt.Errorf("the copy at %s does not open: %w", path, err)
	}
	defer st.Close()
	return st.IntegrityCheck(ctx)
}

// Restore puts the backup src in place as the SQLite database at
// databaseURL, which must not exist yet (a fresh data directory: restoring
// over a live database is refused). The restored database is migrated
// forward when the backup comes from an older version.
func Restore(ctx context.Context, src, databaseURL string) error {
	path, err := sqlstore.SQLitePath(databaseURL)
	if err != nil {
		return err
	}
	if path == "" {
		return ErrPostgres
	}
	for _, p := range []string{path, path + "-wal"} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: restore into a fresh data directory (stop Gatehouse and move the old database away first)", p)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		return err
	}
	if err := check(ctx, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s is not a usable Gatehouse backup: %w", src, err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		os.Remove(tmp + side)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	st, err := sqlstore.Open(ctx, databaseURL, quiet) // migrates forward
	if err != nil {
		return err
	}
	return st.Close()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
