package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/jackc/pgx/v5"
)

// TestPostgresLazyBegin: a transaction whose BEGIN leaves with its first
// Exec (pglazy.go) is still one transaction in every way database/sql's
// callers rely on. Each case starts from an empty used_once table and says
// which keys must be there once the transaction has ended. The store's
// pool holds one connection, so a transaction left open on it would show
// in the next case.
func TestPostgresLazyBegin(t *testing.T) {
	ctx := context.Background()
	url := testdb.URL(t, "postgres")
	s, err := Open(ctx, url, Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.writer
	other, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	insert := func(tx *sql.Tx, key string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ($1, $2)`, key, int64(1))
		return err
	}
	for _, tc := range []struct {
		name    string
		opts    *sql.TxOptions
		run     func(tx *sql.Tx) error // the transaction's statements
		commit  bool                   // commit (else roll back) when run succeeds
		wantErr string                 // in run's error or Commit's
		want    []string
	}{
		{name: "first exec rolled back with the rest", run: func(tx *sql.Tx) error {
			return errors.Join(insert(tx, "a"), insert(tx, "b"))
		}, want: nil},
		{name: "first exec committed", commit: true, run: func(tx *sql.Tx) error {
			return errors.Join(insert(tx, "a"), insert(tx, "b"))
		}, want: []string{"a", "b"}},
		{name: "first exec fails", commit: true, run: func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ($1, NULL)`, "a")
			return err
		}, wantErr: "not-null", want: nil},
		{name: "failure swallowed, commit refused", commit: true, run: func(tx *sql.Tx) error {
			if err := insert(tx, "a"); err != nil {
				return err
			}
			_ = insert(tx, "a") // duplicate key: the transaction is aborted
			return nil
		}, wantErr: pgx.ErrTxCommitRollback.Error(), want: nil},
		{name: "query first, then exec", commit: true, run: func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM used_once`).Scan(&n); err != nil {
				return err
			}
			return insert(tx, "q")
		}, want: []string{"q"}},
		{name: "exec without arguments", commit: false, run: func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ('n', 1); INSERT INTO used_once (key, expires) VALUES ('m', 1)`)
			return err
		}, want: nil},
		{name: "nothing run", commit: true, run: func(*sql.Tx) error { return nil }, want: nil},
		{name: "read-only transaction refuses the first exec", opts: &sql.TxOptions{ReadOnly: true}, commit: true, run: func(tx *sql.Tx) error {
			return insert(tx, "r")
		}, wantErr: "read-only", want: nil},
		{name: "the first exec sees the transaction's snapshot", opts: &sql.TxOptions{Isolation: sql.LevelRepeatableRead}, commit: true, run: func(tx *sql.Tx) error {
			if err := insert(tx, "s"); err != nil {
				return err
			}
			// Written after the first statement by another connection:
			// invisible to a REPEATABLE READ transaction that began with it.
			if _, err := other.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ('other', 1)`); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM used_once`).Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				return errors.New("the transaction saw a later commit: its first statement ran outside it")
			}
			return nil
		}, want: []string{"other", "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.ExecContext(ctx, `DELETE FROM used_once`); err != nil {
				t.Fatal(err)
			}
			tx, err := db.BeginTx(ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.run(tx)
			if err == nil && tc.commit {
				err = tx.Commit()
			} else {
				_ = tx.Rollback()
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var got []string
			rows, err := db.QueryContext(ctx, `SELECT key FROM used_once ORDER BY key`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					t.Fatal(err)
				}
				got = append(got, k)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("rows %v, want %v", got, tc.want)
			}
		})
	}
}
