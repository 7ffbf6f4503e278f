// Package sqlstore implements gatehouse.Store once over database/sql for
// both SQLite (modernc.org/sqlite, driver "sqlite") and PostgreSQL
// (jackc/pgx/v5/stdlib, driver "pgx").
//
// # How the code is laid out (read this before adding a query)
//
//   - One store, one SQL text: every query is written once, PostgreSQL
//     flavoured, with $1, $2 ... placeholders, which both drivers accept.
//     No "::" casts, no engine-only functions; RETURNING and
//     INSERT ... ON CONFLICT work on both. The only engine differences live
//     in dialect.go (connection setup, pool sizes, goose dialect, which
//     errors are transient) and errors.go (error classification), and in
//     the few fast paths that say so (a first login's look-up and its JIT
//     insert on PostgreSQL, loginfast.go; a code spent with its user,
//     opfast.go) and in the joins that look a user or a group up by the
//     key of another row (keyedjoin.go: a LATERAL subquery on PostgreSQL,
//     so no generic plan scans a tenant; build such statements with
//     perEngine).
//   - Run queries through the *tx helpers, never through t.sqlTx directly:
//     t.exec, t.query, t.get and t.each (and the generic one and all, which
//     decode rows with a scanX function) map driver errors to *gatehouse.Error
//     (unique violation → ECONFLICT with Field, foreign key → ENOTFOUND,
//     database down → EUNAVAILABLE); t.affected turns "0 rows" into
//     ENOTFOUND; placeholders builds "$n" lists for IN (...) clauses and
//     where builds filtered WHERE clauses. Wrap a write that may violate a
//     constraint in t.guard, so the caller can catch ECONFLICT and go on
//     in the same transaction on PostgreSQL as on SQLite.
//   - Encoding (codec.go): times are int64 microseconds since the epoch in
//     UTC (ts, tsPtr; scanned back with fromTS, nullTime); lists and maps
//     are JSON text (jsonArg, unmarshalJSON); case-insensitive keys are
//     gatehouse.NormalizeEmail / gatehouse.FoldKey, stored in *_key columns.
//   - Users: userColumns is the column list and scanUser the matching
//     scanner; fillUserGroups loads the group names of a page of users in
//     one query (no N+1). Groups: groupColumns / scanGroup likewise.
//   - Pagination (codec.go): pageLimit clamps a Page; encodeCursor /
//     decodeCursor wrap the last ID (IDs are time-ordered); listPage runs
//     a query that asks for limit+1 rows and returns a page and the next
//     cursor.
//   - Partial unique indexes (email_key, username_key, external_id; they
//     cover only non-empty values): a lookup must repeat the non-empty
//     condition of the index or neither engine uses it for "x = $n"
//     (plan_test.go checks the hot lookups).
//   - On SQLite each connection caches its prepared statements
//     (stmtcache.go), so constant query text is parsed once; prefer
//     constant SQL on hot paths.
//   - Each object kind has its own file (tenants.go, users.go, ...). A new
//     Tx method goes in a file of its own with the same helpers.
//
// SQLite runs with WAL, a busy timeout and foreign keys on. Update goes
// through ONE writer connection (BEGIN IMMEDIATE) and View through a
// separate pool of read-only connections, so concurrent writers queue in
// the process instead of failing with SQLITE_BUSY, and readers never wait
// for the writer. Queued writers are committed together, each fn in a
// savepoint of its own (group commit, groupcommit.go). PostgreSQL runs
// Update in READ COMMITTED and re-runs fn a few times on serialization
// failures and deadlocks (SQLSTATE 40001, 40P01); fn must therefore have no
// side effects outside the transaction. Its BEGIN leaves with the
// transaction's first statement, one round trip fewer (pglazy.go).
//
// Do not call Update from inside fn: on SQLite the writer connection is
// held by the outer call and the inner one would wait for ever.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "NORMAL" (default; with
	// WAL a power loss may lose the last commits but never corrupts) or
	// "FULL" (every commit is durable). Ignored on PostgreSQL.
	Synchronous string
	// MaxConns bounds the PostgreSQL pool (default 10: more than a small
	// machine's cores only queue inside the server, and several replicas
	// share its max_connections). Ignored on SQLite.
	MaxConns int
	// Clock gives the time of created_at, updated_at and replay-cache
	// expiry; default the wall clock.
	Clock gatehouse.Clock
	// Logger receives retries and migration progress; default slog.Default().
	Logger *slog.Logger
}

// Store is a gatehouse.Store on SQLite or PostgreSQL.
type Store struct {
	d      *dialect
	writer *sql.DB // SQLite: one connection; PostgreSQL: the pool
	reader *sql.DB // SQLite: read-only pool; PostgreSQL: same as writer
	clock  gatehouse.Clock
	log    *slog.Logger
	purge  purgeTicker
	// Unix times that gate the purges of expired rows done in passing,
	// per process: the last purge of authorize requests (op.go) and of
	// tokens (op.go), and the time before which sessions are not purged
	// again (sessions.go).
	opPurged, opTokensPurged, sessionsPurgeAfter atomic.Int64
	// commits batches SQLite writes (groupcommit.go); nil on PostgreSQL.
	commits *committer
	// writerTx follows the SQLite writer's transaction (writertx.go); nil
	// on PostgreSQL.
	writerTx *writerTx
	// scimTokens caches SCIM tokens for a second (scimtokens.go).
	scimTokens scimTokenCache
}

var _ gatehouse.Store = (*Store)(nil)

// Open connects to databaseURL, applies the embedded migrations and returns
// the store. databaseURL is sqlite:///abs/path.db, sqlite://relative.db, a
// plain file path, or postgres://... (postgresql:// too). A database that
// does not answer gives an error for which IsUnavailable is true.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	s, err := open(ctx, databaseURL, opts)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.dropStat4(ctx); err != nil {
		s.Close()
		return nil, s.d.mapErr(err)
	}
	return s, nil
}

// dropStat4 deletes SQLite's STAT4 samples (made by ANALYZE and PRAGMA
// optimize; modernc's SQLite is built with SQLITE_ENABLE_STAT4) and keeps
// the sqlite_stat1 statistics. With samples for an index, SQLite
// re-prepares a statement whenever a value bound against that index
// changes, in case another plan suits the new value: every login and SCIM
// lookup by email, subject or token digest was parsed and planned again,
// and the statement cache was of no use (it was a quarter of a SCIM filter's
// CPU). Our lookups are all index equalities whose plan never depends on
// the value. ANALYZE sqlite_schema makes the planner reload the tables.
func (s *Store) dropStat4(ctx context.Context) error {
	if s.d != sqliteDialect {
		return nil
	}
	var n int
	if err := s.writer.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat4'`).Scan(&n); err != nil || n == 0 {
		return err
	}
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM sqlite_stat4`); err != nil {
		return err
	}
	_, err := s.writer.ExecContext(ctx, `ANALYZE sqlite_schema`)
	return err
}

// open connects without migrating.
func open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	d, target, err := parseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = gatehouse.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{d: d, clock: opts.Clock, log: opts.Logger}
	if d == sqliteDialect {
		s.writerTx = &writerTx{}
		s.commits = &committer{}
	}
	s.writer, s.reader, err = d.connect(ctx, target, opts, s.writerTx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Engine is "sqlite" or "postgres".
func (s *Store) Engine() string { return s.d.name }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return s.d.mapErr(err)
	}
	if s.reader != s.writer {
		if err := s.reader.PingContext(ctx); err != nil {
			return s.d.mapErr(err)
		}
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error {
	if s.d == sqliteDialect {
		// SQLite's advice for long-lived connections: refresh the
		// planner's statistics where they are stale, on the way out.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = s.writer.ExecContext(ctx, "PRAGMA optimize")
		_ = s.dropStat4(ctx)
		cancel()
	}
	err := s.writer.Close()
	if s.reader != s.writer {
		err = errors.Join(err, s.reader.Close())
	}
	return err
}

// DB returns the writer pool, for tests that need to look under the store.
func (s *Store) DB() *sql.DB { return s.writer }

// maxAttempts bounds how often Update runs fn when PostgreSQL reports a
// serialization failure or a deadlock.
const maxAttempts = 5

// Update runs fn in one read-write transaction; see gatehouse.Store.
func (s *Store) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	// On PostgreSQL the first run skips guardStmt's savepoints (two round
	// trips per guarded write); if a guarded write fails, that run is
	// rolled back and fn runs again with them. See guardStmt.
	lazy := s.d == postgresDialect
	for attempt := 1; ; attempt++ {
		var err error
		if s.commits != nil {
			err = s.commits.update(s, ctx, fn)
		} else {
			err = s.runWrite(ctx, fn, lazy)
		}
		if errors.Is(err, errNeedSavepoints) && lazy {
			lazy = false
			attempt--
			continue
		}
		if err == nil || attempt == maxAttempts || !s.d.retryable(err) {
			return err
		}
		// A short, growing pause lets the competing transaction finish.
		wait := time.Duration(attempt*attempt) * 5 * time.Millisecond
		s.log.DebugContext(ctx, "sqlstore: retrying transaction", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return s.run(ctx, s.reader, s.d.readTx, fn)
}

func (s *Store) run(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx gatehouse.Tx) error) (err error) {
	return s.runTx(ctx, db, opts, fn, false)
}

// runWrite runs fn in a write transaction on the writer pool; lazy: see
// guardStmt.
func (s *Store) runWrite(ctx context.Context, fn func(tx gatehouse.Tx) error, lazy bool) error {
	return s.runTx(ctx, s.writer, s.d.writeTx, fn, lazy)
}

func (s *Store) runTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx gatehouse.Tx) error, lazy bool) (err error) {
	sqlTx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return s.d.mapErr(err)
	}
	done := false
	defer func() {
		if !done {
			// fn panicked: never leave the writer inside a transaction.
			_ = sqlTx.Rollback()
		}
	}()
	t := &tx{s: s, sqlTx: sqlTx, lazy: lazy}
	defer endCatalogWrite(t)
	if err := fn(t); err != nil || t.broken {
		done = true
		_ = sqlTx.Rollback()
		if t.broken {
			// Whatever fn made of the failed write (it may have caught
			// the error and gone on), the transaction is aborted.
			return errNeedSavepoints
		}
		return err
	}
	done = true
	if err := sqlTx.Commit(); err != nil {
		return s.d.mapErr(err)
	}
	return nil
}

// now is the store's clock, in the precision the database keeps.
func (s *Store) now() time.Time { return normTime(s.clock.Now()) }

// tx is a gatehouse.Tx. Its methods live in one file per object kind.
type tx struct {
	s     *Store
	sqlTx *sql.Tx
	// lazy: guardStmt runs without a savepoint (PostgreSQL's first run);
	// broken: such a write failed, so the transaction is aborted and fn
	// must run again with savepoints; bumped: it wrote the catalog
	// (tx.bumpCatalog); wrote: a statement that may have changed rows ran
	// (the group commit's savepoint-free batch, groupcommit.go).
	lazy, broken, bumped, wrote bool
}

// errNeedSavepoints tells Update to run fn again with savepoints. It never
// leaves Update.
var errNeedSavepoints = errors.New("sqlstore: a guarded write failed without a savepoint")

var _ gatehouse.Tx = (*tx)(nil)

// exec runs a statement and maps its error.
func (t *tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := t.sqlTx.ExecContext(ctx, query, args...)
	if err != nil {
		// A failed statement changed nothing: SQLite undoes its own
		// changes (ON CONFLICT ABORT; none of ours says FAIL), or rolls
		// the whole transaction back, which writerTx sees.
		return nil, t.s.d.mapErr(err)
	}
	t.wrote = true
	return res, nil
}

// execDeferred runs a write whose only outcome the caller needs is that
// the transaction fails when it fails: an insert under a new random id
// that nothing later in the transaction reads. On PostgreSQL it leaves
// with the transaction's next statement or its COMMIT, and its error
// comes back from there (pglazy.go); elsewhere it runs now. The caller
// must not change args' contents afterwards.
func (t *tx) execDeferred(ctx context.Context, query string, args ...any) error {
	if t.s.d == postgresDialect {
		ctx = withDeferredWrite(ctx)
	}
	_, err := t.exec(ctx, query, args...)
	return err
}

// query runs a query and maps its error; the caller closes the rows and
// checks rows.Err through t.rowsErr.
func (t *tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if !readOnly(query) {
		// INSERT ... RETURNING and the like: its error may come only
		// with the rows, so it counts before it runs.
		t.wrote = true
	}
	rows, err := t.sqlTx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, t.s.d.mapErr(err)
	}
	return rows, nil
}

// readOnly reports whether query is a plain SELECT, which changes no rows.
// Anything else (WITH may lead to an INSERT on SQLite) counts as a write.
func readOnly(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// get runs a query expected to return one row and scans it with scan. No
// row is ENOTFOUND with notFound as the message.
func (t *tx) get(ctx context.Context, notFound string, scan func(scanner) error, query string, args ...any) error {
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return t.s.d.mapErr(err)
		}
		return gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", notFound)
	}
	if err := scan(rows); err != nil {
		return t.s.d.mapErr(err)
	}
	return t.s.d.mapErr(rows.Close())
}

// one runs a query for one row and decodes it with scan; no row is
// ENOTFOUND with notFound as the message.
func one[T any](ctx context.Context, t *tx, notFound string, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	var v T
	err := t.get(ctx, notFound, func(sc scanner) (err error) {
		v, err = scan(sc)
		return err
	}, query, args...)
	return v, err
}

// all runs a query and decodes every row with scan. No rows is an empty,
// non-nil list, so it encodes as [].
func all[T any](ctx context.Context, t *tx, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	list := []T{}
	err := t.each(ctx, func(sc scanner) error {
		v, err := scan(sc)
		list = append(list, v)
		return err
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return list, nil
}

// listPage runs a list query that asks for limit+1 rows (ordered by ID) and
// returns at most limit of them with the cursor of the next page.
func listPage[T any](ctx context.Context, t *tx, scan func(scanner) (T, error), limit int, id func(T) string, query string, args ...any) ([]T, string, error) {
	list, err := all(ctx, t, scan, query, args...)
	if err != nil {
		return nil, "", err
	}
	list, next := nextCursor(list, limit, id)
	return list, next, nil
}

// each runs a query and calls scan for every row.
func (t *tx) each(ctx context.Context, scan func(scanner) error, query string, args ...any) error {
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return t.s.d.mapErr(err)
		}
	}
	return t.s.d.mapErr(rows.Err())
}

// affected runs a statement that must change at least one row; none is
// ENOTFOUND with notFound as the message.
func (t *tx) affected(ctx context.Context, notFound string, query string, args ...any) error {
	n, err := t.count(ctx, query, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", notFound)
	}
	return nil
}

// count runs a statement and returns how many rows it changed.
func (t *tx) count(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, t.s.d.mapErr(err)
	}
	return n, nil
}

// exists runs a "SELECT 1 ..." query and reports whether it found a row.
func (t *tx) exists(ctx context.Context, query string, args ...any) (bool, error) {
	err := t.get(ctx, "", func(scanner) error { return nil }, query, args...)
	if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return false, nil
	}
	return err == nil, err
}

// guard runs fn, a write that may violate a unique or foreign key
// constraint, inside a savepoint: when it fails, everything it wrote is
// undone and the transaction stays usable, on both engines. A caller may
// then catch ECONFLICT and go on (read the winner, pick another username).
// Without it PostgreSQL would abort the whole transaction, and SQLite would
// keep the statements of a multi-statement write that ran before the error.
func (t *tx) guard(ctx context.Context, fn func() error) error {
	if _, err := t.sqlTx.ExecContext(ctx, "SAVEPOINT gh_guard"); err != nil {
		return t.s.d.mapErr(err)
	}
	if err := fn(); err != nil {
		if _, rerr := t.sqlTx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT gh_guard"); rerr != nil {
			return errors.Join(err, t.s.d.mapErr(rerr))
		}
		return err
	}
	if _, err := t.sqlTx.ExecContext(ctx, "RELEASE SAVEPOINT gh_guard"); err != nil {
		return t.s.d.mapErr(err)
	}
	return nil
}

// guardStmt is guard for a fn that runs exactly one write statement. SQLite
// already undoes a failing statement's own changes and keeps the
// transaction going (ON CONFLICT ABORT, https://sqlite.org/lang_conflict.html;
// with RETURNING every change happens in the first step), so the savepoint's
// two extra statements — a tenth of a JIT login's store work — are skipped
// there. PostgreSQL aborts the whole transaction on any error, so it keeps
// the savepoint.
//
// PostgreSQL's savepoint costs two round trips per guarded write, and a
// guarded write fails only in a race or on bad input. So Update first runs
// fn lazily, without them: a failing guarded write marks the transaction
// broken and returns errNeedSavepoints (never ECONFLICT, so no caller goes
// on in an aborted transaction); Update rolls back and runs fn again with
// savepoints, where the write fails as before and the caller may catch it.
// fn may run more than once already (see gatehouse.Store).
func (t *tx) guardStmt(ctx context.Context, fn func() error) error {
	switch {
	case t.s.d == sqliteDialect:
		return fn()
	case t.lazy:
		if err := fn(); err != nil {
			t.broken = true
			return errNeedSavepoints
		}
		return nil
	}
	return t.guard(ctx, fn)
}

// scanner is *sql.Rows or *sql.Row.
type scanner interface{ Scan(dest ...any) error }

// placeholders returns "$from, $from+1, ... " for n values: the list inside
// an IN (...) clause whose first value is argument number from.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// where builds a WHERE clause and its arguments, numbering placeholders.
type where struct {
	conds []string
	args  []any
}

// add appends a condition; each "?" in cond becomes the next $n bound to
// the matching value of vals. cond is SQL text of our own and must hold
// no other '?' (not even in a literal).
func (w *where) add(cond string, vals ...any) {
	var b strings.Builder
	v := 0
	for i := 0; i < len(cond); i++ {
		if cond[i] == '?' && v < len(vals) {
			w.args = append(w.args, vals[v])
			v++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(len(w.args)))
			continue
		}
		b.WriteByte(cond[i])
	}
	w.conds = append(w.conds, b.String())
}

// arg appends a value and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// errInternal wraps an unexpected error with context for the log.
func errInternal(what string, err error) error {
	return fmt.Errorf("sqlstore: %s: %w", what, err)
}
