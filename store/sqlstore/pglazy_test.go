package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
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
	// later is insert as a deferred write (execDeferred).
	later := func(tx *sql.Tx, key string) error {
		_, err := tx.ExecContext(withDeferredWrite(ctx), `INSERT INTO used_once (key, expires) VALUES ($1, $2)`, key, int64(1))
		return err
	}
	count := func(tx *sql.Tx) (n int, err error) {
		return n, tx.QueryRowContext(ctx, `SELECT count(*) FROM used_once`).Scan(&n)
	}
	// refusedLater: err is a deferred write's refusal, which no caller may
	// take for its own statement's (mapErr makes it internal).
	refusedLater := func(err error) error {
		var dw *deferredWriteError
		if !errors.As(err, &dw) {
			return fmt.Errorf("not a deferred write's error: %v", err)
		}
		var ge *gatehouse.Error
		if errors.As(mapErr(err), &ge) && ge.Code != gatehouse.EINTERNAL {
			return fmt.Errorf("mapped to %s: %v", ge.Code, err)
		}
		return nil
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
		{name: "query first fails", commit: true, run: func(tx *sql.Tx) error {
			var n int
			return tx.QueryRowContext(ctx, `SELECT 1 / count(*) FROM used_once`).Scan(&n)
		}, wantErr: "division by zero", want: nil},
		{name: "update returning first, rolled back", run: func(tx *sql.Tx) error {
			var k string
			err := tx.QueryRowContext(ctx, `INSERT INTO used_once (key, expires) VALUES ($1, 2) RETURNING key`, "u").Scan(&k)
			if err == nil && k != "u" {
				err = errors.New("RETURNING gave " + k)
			}
			return err
		}, want: nil},
		{name: "update returning first, committed", commit: true, run: func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `INSERT INTO used_once (key, expires) VALUES ($1, 2), ($2, 3) RETURNING key`, "u", "v")
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			if n != 2 {
				return errors.New("RETURNING gave the wrong number of rows")
			}
			return rows.Err()
		}, want: []string{"u", "v"}},
		{name: "read-only query first sees one snapshot", opts: &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}, commit: true, run: func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM used_once WHERE key <> $1`, "-").Scan(&n); err != nil {
				return err
			}
			if _, err := other.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ('later', 1)`); err != nil {
				return err
			}
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM used_once`).Scan(&n); err != nil {
				return err
			}
			if n != 0 {
				return errors.New("the transaction saw a later commit: its first query ran outside it")
			}
			return nil
		}, want: []string{"later"}},
		{name: "exec without arguments", commit: false, run: func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ('n', 1); INSERT INTO used_once (key, expires) VALUES ('m', 1)`)
			return err
		}, want: nil},
		{name: "query first, with the rows left unread", commit: true, run: func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT key FROM used_once WHERE expires > $1`, 0)
			if err != nil {
				return err
			}
			rows.Close()
			return insert(tx, "w")
		}, want: []string{"w"}},
		{name: "nothing run", commit: true, run: func(*sql.Tx) error { return nil }, want: nil},
		{name: "deferred writes leave with COMMIT", commit: true, run: func(tx *sql.Tx) error {
			return errors.Join(later(tx, "a"), later(tx, "b"))
		}, want: []string{"a", "b"}},
		{name: "deferred writes rolled back unsent", run: func(tx *sql.Tx) error {
			return errors.Join(insert(tx, "a"), later(tx, "b"))
		}, want: nil},
		{name: "deferred first write rolled back unsent", run: func(tx *sql.Tx) error {
			return later(tx, "b")
		}, want: nil},
		{name: "a deferred write runs before the next query", commit: true, run: func(tx *sql.Tx) error {
			if err := errors.Join(insert(tx, "a"), later(tx, "b")); err != nil {
				return err
			}
			if n, err := count(tx); err != nil || n != 2 {
				return fmt.Errorf("count %d, %v: the query ran before the write", n, err)
			}
			return nil
		}, want: []string{"a", "b"}},
		{name: "a deferred write has no result", commit: true, run: func(tx *sql.Tx) error {
			res, err := tx.ExecContext(withDeferredWrite(ctx), `INSERT INTO used_once (key, expires) VALUES ($1, 1)`, "d")
			if err != nil {
				return err
			}
			if _, err := res.RowsAffected(); !errors.Is(err, errDeferredResult) {
				return fmt.Errorf("RowsAffected: %v", err)
			}
			return nil
		}, want: []string{"d"}},
		{name: "deferred write before an exec without arguments", commit: true, run: func(tx *sql.Tx) error {
			if err := later(tx, "a"); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ('n', 1); INSERT INTO used_once (key, expires) VALUES ('m', 1)`)
			return err
		}, want: []string{"a", "m", "n"}},
		{name: "deferred write refused at COMMIT", commit: true, run: func(tx *sql.Tx) error {
			return errors.Join(insert(tx, "a"), later(tx, "b"), later(tx, "a"))
		}, wantErr: "a deferred write failed", want: nil},
		{name: "deferred write refused, reported by the next query", run: func(tx *sql.Tx) error {
			if err := errors.Join(insert(tx, "a"), later(tx, "a")); err != nil {
				return err
			}
			_, err := count(tx)
			return refusedLater(err)
		}, want: nil},
		{name: "deferred write refused, reported by the next exec", run: func(tx *sql.Tx) error {
			if err := errors.Join(later(tx, "a"), later(tx, "a")); err != nil {
				return err
			}
			return refusedLater(insert(tx, "c"))
		}, want: nil},
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

// countingConn counts the writes a client makes to the server: each is
// one round trip of the client's.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestPostgresDeferredWritesRoundTrips: a login-shaped transaction (a
// query, a guarded write, then a session and an audit row nothing reads)
// sends its deferred writes with the next statement and with COMMIT, so
// it makes two round trips fewer than with each write on its own.
func TestPostgresDeferredWritesRoundTrips(t *testing.T) {
	ctx := context.Background()
	url := testdb.URL(t, "postgres")
	s, err := Open(ctx, url, Options{}) // the schema
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return countingConn{Conn: c, writes: &writes}, err
	}
	db := sql.OpenDB(&pgConnector{inner: stdlib.GetConnector(*cfg)})
	defer db.Close()
	db.SetMaxOpenConns(1)
	n := 0
	login := func(deferred bool) int64 {
		t.Helper()
		wctx := ctx
		if deferred {
			wctx = withDeferredWrite(ctx)
		}
		before := writes.Load()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		n++
		key := func(k string) string { return fmt.Sprintf("%s%d", k, n) }
		var c int
		err = errors.Join(
			tx.QueryRowContext(ctx, `SELECT count(*) FROM used_once WHERE key = $1`, key("q")).Scan(&c),
			exec(tx, ctx, key("user")),
			exec(tx, wctx, key("session")),
			exec(tx, ctx, key("code")),
			exec(tx, wctx, key("audit")),
			tx.Commit())
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM used_once WHERE key IN ($1, $2, $3, $4)`,
			key("user"), key("session"), key("code"), key("audit")).Scan(&got); err != nil || got != 4 {
			t.Fatalf("%d of the transaction's 4 rows committed (%v)", got, err)
		}
		return writes.Load() - before - 1 // less the check's own
	}
	for _, deferred := range []bool{false, true} {
		login(deferred) // pgx prepares each statement on its first use
	}
	// BEGIN leaves with the query either way; deferred, the session
	// leaves with the code and the audit row with COMMIT.
	if plain, deferred := login(false), login(true); plain != 6 || deferred != 4 {
		t.Fatalf("round trips: %d with each write on its own (want 6), %d with deferred writes (want 4)", plain, deferred)
	}
}

func exec(tx *sql.Tx, ctx context.Context, key string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO used_once (key, expires) VALUES ($1, 1)`, key)
	return err
}

// TestDeferredWriteFailsItsTransaction: a refused audit row (a duplicate
// id within its tenant) fails the whole Update on both engines — on
// PostgreSQL it is a deferred write, refused at COMMIT or at the next
// statement — so nothing of the transaction is written, and the store
// goes on working.
func TestDeferredWriteFailsItsTransaction(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s := openEngine(t, engine)
			acme := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
			audit := func(tx gatehouse.Tx, id string) error {
				return tx.AppendAudit(ctx, &gatehouse.AuditEvent{ID: id, TenantID: acme.ID, Action: "test.done", TargetID: "t"})
			}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error {
				return errors.Join(tx.CreateTenant(ctx, acme), audit(tx, "aud_1"))
			}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				then func(tx gatehouse.Tx) error // after the refused write
			}{
				{"refused at COMMIT", func(gatehouse.Tx) error { return nil }},
				{"refused at the next query", func(tx gatehouse.Tx) error { _, err := tx.GetTenant(ctx, acme.ID); return err }},
			} {
				slug := strings.ReplaceAll(strings.ToLower(tc.name), " ", "-")
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					if err := tx.CreateTenant(ctx, &gatehouse.Tenant{Slug: slug, Name: "Beta"}); err != nil {
						return err
					}
					if err := audit(tx, "aud_1"); err != nil {
						return err
					}
					return tc.then(tx)
				})
				if err == nil {
					t.Fatalf("%s: the duplicate audit row was accepted", tc.name)
				}
				if engine == "postgres" && gatehouse.IsCode(err, gatehouse.ECONFLICT) {
					t.Fatalf("%s: a deferred write's refusal reads as the conflict of a later statement: %v", tc.name, err)
				}
				err = s.View(ctx, func(tx gatehouse.Tx) error { _, err := tx.GetTenantBySlug(ctx, slug); return err })
				if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					t.Fatalf("%s: the failed transaction's tenant: %v, want ENOTFOUND", tc.name, err)
				}
			}
			if err := s.Update(ctx, func(tx gatehouse.Tx) error { return audit(tx, "aud_2") }); err != nil {
				t.Fatalf("the next transaction: %v", err)
			}
		})
	}
}

// TestPostgresLazyBeginValues: a row read by a transaction's first query
// (a batch with BEGIN) scans into the same Go values as the same row read
// by any later query (pgx's stdlib), NULLs included.
func TestPostgresLazyBeginValues(t *testing.T) {
	ctx := context.Background()
	s := openEngine(t, "postgres")
	const q = `SELECT $1::text, $2::bigint, 7::integer, 3::smallint, true, '\x0aff'::bytea,
		'{"a": [1, "x"]}'::json, '{"b": 2}'::jsonb, 1.5::float8, 2.25::numeric,
		'2026-11-30 12:00:00+00'::timestamptz, NULL::text, NULL::bigint, NULL::bytea, count(*) FROM used_once`
	type row struct {
		s, js, jsb, num string
		i8, i4, i2, cnt int64
		b               bool
		by              []byte
		f               float64
		ts              time.Time
		ns              sql.NullString
		ni              sql.NullInt64
		nb              []byte
	}
	read := func(tx *sql.Tx) (r row) {
		t.Helper()
		err := tx.QueryRowContext(ctx, q, "ana", int64(1)<<40).Scan(&r.s, &r.i8, &r.i4, &r.i2, &r.b, &r.by,
			&r.js, &r.jsb, &r.f, &r.num, &r.ts, &r.ns, &r.ni, &r.nb, &r.cnt)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tx, err := s.writer.BeginTx(ctx, s.d.readTx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	first, later := read(tx), read(tx)
	if fmt.Sprintf("%#v", first) != fmt.Sprintf("%#v", later) {
		t.Fatalf("first query:\n%#v\nlater query:\n%#v", first, later)
	}
	if first.s != "ana" || first.i8 != 1<<40 || first.i4 != 7 || !first.b || string(first.by) != "\n\xff" ||
		first.jsb != `{"b": 2}` || first.num != "2.25" || first.ns.Valid || first.ni.Valid || first.nb != nil || first.ts.Unix() != 1796040000 {
		t.Fatalf("values %#v", first)
	}
}
