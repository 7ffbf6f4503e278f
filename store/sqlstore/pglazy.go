package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL transactions that send BEGIN with their first statement, and
// writes that leave with the statement after them.
//
// Every statement on PostgreSQL is a round trip: a write of the client, a
// wake-up of a server process, a read. database/sql's BeginTx is one more
// before any work (pgx sends BEGIN and waits for its answer), so a login's
// transaction of nine statements took eleven round trips and a code grant
// of three took five. The frontend/backend protocol lets a client send
// several extended-query messages before it reads (PostgreSQL docs,
// "Pipeline Mode"); here BEGIN waits on the connection and leaves in one
// pgx batch with the transaction's first statement, so that a View of one
// query is two round trips instead of three and a login's transaction
// ten instead of eleven. A first Exec without arguments, which pgx runs
// in the simple protocol (a migration file may hold several statements,
// which a batch may not), sends BEGIN alone first, as before.
//
// Nothing else changes: the batch runs BEGIN and the statement in order,
// so the statement runs inside the transaction; if it fails, the
// transaction is aborted as it would be after a separate BEGIN, and
// database/sql rolls it back. A transaction that ran nothing commits and
// rolls back without a round trip. A first query's rows reach
// database/sql as the values pgx's stdlib gives (pgBatchRows).
//
// The same batch carries deferred writes (execDeferred): an insert whose
// only outcome that matters is that the transaction fails if it fails (a
// session, a token or an audit row under a new random id) waits on the
// connection and leaves in one batch with the next statement or with
// COMMIT, so a login's session and audit rows and a code grant's token
// cost no round trip of their own. The batch runs in order, so the write
// runs where it was issued; if it fails, the server skips the rest of the
// batch (the transaction is aborted) and the error comes back from the
// statement it left with, or from COMMIT, as a deferredWriteError that
// no caller can take for that statement's own (a unique violation of the
// write is not an ECONFLICT of the statement after it). A rolled-back
// transaction discards its deferred writes unsent.

// pgConnector wraps pgx's database/sql connector.
type pgConnector struct{ inner driver.Connector }

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("sqlstore: pgx's connector made a %T", conn)
	}
	return &pgLazyConn{Conn: sc}, nil
}

func (c *pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgLazyConn is a pgx connection whose BEGIN waits for the first statement.
// database/sql uses a driver connection from one goroutine at a time.
type pgLazyConn struct {
	*stdlib.Conn
	inTx     bool
	begin    string         // the BEGIN statement not sent yet, or ""
	deferred []deferredStmt // writes not sent yet, in order
}

// deferredStmt is a write waiting for the next round trip.
type deferredStmt struct {
	query string
	args  []any
}

// deferredKey marks a context whose Exec may wait (withDeferredWrite).
type deferredKey struct{}

// withDeferredWrite marks ctx for an Exec that may leave with the
// transaction's next statement or COMMIT (see above). Other drivers
// ignore the mark.
func withDeferredWrite(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferredKey{}, true)
}

// deferredResult is the result of a write not sent yet: it has none.
type deferredResult struct{}

var errDeferredResult = errors.New("sqlstore: a deferred write has no result")

func (deferredResult) LastInsertId() (int64, error) { return 0, errDeferredResult }
func (deferredResult) RowsAffected() (int64, error) { return 0, errDeferredResult }

// deferredWriteError is the server's refusal of a deferred write, reported
// by a later statement. It wraps nothing, so mapErr makes it an internal
// error whatever the refusal was.
type deferredWriteError struct{ err error }

func (e *deferredWriteError) Error() string {
	return "sqlstore: a deferred write failed: " + e.err.Error()
}

// deferredErr is err of a deferred write as a later statement reports it:
// a refusal by the server becomes a deferredWriteError; anything else (a
// lost connection, an ended context) is that statement's own.
func deferredErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &deferredWriteError{err: err}
	}
	return err
}

// pending reports whether anything waits to be sent.
func (c *pgLazyConn) pending() bool { return c.begin != "" || len(c.deferred) > 0 }

// queuePending moves the pending BEGIN and deferred writes into b.
func (c *pgLazyConn) queuePending(b *pgx.Batch) (begin bool, writes int) {
	if c.begin != "" {
		b.Queue(c.begin)
		begin = true
	}
	for _, w := range c.deferred {
		b.Queue(w.query, w.args...)
	}
	writes = len(c.deferred)
	c.begin = ""
	c.dropDeferred()
	return begin, writes
}

// readPending reads the answers to what queuePending queued.
func readPending(br pgx.BatchResults, begin bool, writes int) error {
	if begin {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	for range writes {
		if _, err := br.Exec(); err != nil {
			return deferredErr(err)
		}
	}
	return nil
}

func (c *pgLazyConn) dropDeferred() {
	clear(c.deferred)
	c.deferred = c.deferred[:0]
}

func (c *pgLazyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.Conn.Conn().IsClosed() {
		return nil, driver.ErrBadConn
	}
	q, err := beginSQL(opts)
	if err != nil {
		return nil, err
	}
	c.begin, c.inTx = q, true
	c.dropDeferred()
	return &pgLazyTx{c: c, ctx: ctx}, nil
}

// Begin is for drivers' older callers; database/sql calls BeginTx.
func (c *pgLazyConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// sendPending sends a pending BEGIN and deferred writes on their own.
func (c *pgLazyConn) sendPending(ctx context.Context) error {
	switch {
	case !c.pending():
		return nil
	case len(c.deferred) == 0:
		q := c.begin
		c.begin = ""
		_, err := c.Conn.Conn().Exec(ctx, q)
		return err
	}
	br, err := c.withPending(ctx, "")
	if err != nil {
		return err
	}
	return br.Close()
}

func (c *pgLazyConn) ExecContext(ctx context.Context, query string, argsV []driver.NamedValue) (driver.Result, error) {
	if c.inTx && ctx.Value(deferredKey{}) != nil {
		c.deferred = append(c.deferred, deferredStmt{query: query, args: retainedArgs(argsV)})
		return deferredResult{}, nil
	}
	if !c.pending() || len(argsV) == 0 {
		if err := c.sendPending(ctx); err != nil {
			return nil, err
		}
		return c.Conn.ExecContext(ctx, query, argsV)
	}
	br, err := c.withPending(ctx, query, namedArgs(argsV)...)
	if err != nil {
		return nil, err
	}
	tag, err := br.Exec()
	if err != nil {
		return nil, batchErr(err, br)
	}
	if err := br.Close(); err != nil {
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

func (c *pgLazyConn) QueryContext(ctx context.Context, query string, argsV []driver.NamedValue) (driver.Rows, error) {
	if !c.pending() {
		return c.Conn.QueryContext(ctx, query, argsV)
	}
	br, err := c.withPending(ctx, query, namedArgs(argsV)...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return nil, batchErr(err, br)
	}
	// Read the first row now, as pgx's stdlib does: the statement's
	// error (a constraint of an UPDATE … RETURNING) is the query's.
	r := &pgBatchRows{br: br, rows: rows, m: c.Conn.Conn().TypeMap(), first: true}
	r.more = rows.Next()
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, batchErr(err, br)
	}
	return r, nil
}

// withPending sends the pending BEGIN, the deferred writes and the
// statement (none when query is "") in one batch and reads the answers to
// all but the statement, whose answer comes next from the results.
func (c *pgLazyConn) withPending(ctx context.Context, query string, args ...any) (pgx.BatchResults, error) {
	pc := c.Conn.Conn()
	if pc.IsClosed() {
		return nil, driver.ErrBadConn
	}
	b := &pgx.Batch{}
	begin, writes := c.queuePending(b)
	if query != "" {
		b.Queue(query, args...)
	}
	br := pc.SendBatch(ctx, b)
	if err := readPending(br, begin, writes); err != nil {
		return nil, batchErr(err, br)
	}
	return br, nil
}

// batchErr closes br after err, and reports err as pgx's stdlib would.
func batchErr(err error, br pgx.BatchResults) error {
	_ = br.Close()
	if pgconn.SafeToRetry(err) {
		// Nothing was sent.
		return driver.ErrBadConn
	}
	return err
}

func namedArgs(argsV []driver.NamedValue) []any {
	args := make([]any, len(argsV))
	for i, v := range argsV {
		args[i] = v.Value
	}
	return args
}

// retainedArgs are namedArgs kept past the call: byte slices are copied,
// as the caller may reuse them once Exec returns.
func retainedArgs(argsV []driver.NamedValue) []any {
	args := namedArgs(argsV)
	for i, v := range args {
		if b, ok := v.([]byte); ok {
			args[i] = bytes.Clone(b)
		}
	}
	return args
}

// pgBatchRows are the rows of a batch's query, given to database/sql as
// values of the types pgx's stdlib gives for the same columns (bool,
// []byte, int64, float64, time.Time, string), whatever format pgx asked
// the server for.
type pgBatchRows struct {
	br    pgx.BatchResults
	rows  pgx.Rows
	m     *pgtype.Map
	conv  []func([]byte) (driver.Value, error)
	first bool // more holds the first row's Next
	more  bool
}

func (r *pgBatchRows) Columns() []string {
	fds := r.rows.FieldDescriptions()
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = fd.Name
	}
	return names
}

func (r *pgBatchRows) Close() error {
	r.rows.Close()
	return r.br.Close()
}

func (r *pgBatchRows) Next(dest []driver.Value) error {
	if !r.first {
		r.more = r.rows.Next()
	}
	r.first = false
	if !r.more {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if r.conv == nil {
		for _, fd := range r.rows.FieldDescriptions() {
			r.conv = append(r.conv, columnConverter(r.m, fd.DataTypeOID, fd.Format))
		}
	}
	for i, raw := range r.rows.RawValues() {
		if raw == nil {
			dest[i] = nil
			continue
		}
		v, err := r.conv[i](raw)
		if err != nil {
			return fmt.Errorf("sqlstore: column %d: %w", i, err)
		}
		dest[i] = v
	}
	return nil
}

// columnConverter decodes a column's non-NULL values into driver values.
func columnConverter(m *pgtype.Map, oid uint32, format int16) func([]byte) (driver.Value, error) {
	switch oid {
	case pgtype.BoolOID:
		return scanAs[bool](m, oid, format, func(v bool) driver.Value { return v })
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID:
		return scanAs[[]byte](m, oid, format, func(v []byte) driver.Value { return v })
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		return scanAs[int64](m, oid, format, func(v int64) driver.Value { return v })
	case pgtype.Float4OID, pgtype.Float8OID:
		return scanAs[float64](m, oid, format, func(v float64) driver.Value { return v })
	case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID:
		return scanAs[time.Time](m, oid, format, func(v time.Time) driver.Value { return v })
	default:
		return scanAs[string](m, oid, format, func(v string) driver.Value { return v })
	}
}

func scanAs[T any](m *pgtype.Map, oid uint32, format int16, value func(T) driver.Value) func([]byte) (driver.Value, error) {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return value(d), nil
	}
}

// PrepareContext sends what is pending first: the statement it returns
// runs on pgx's connection directly, past ExecContext and QueryContext.
func (c *pgLazyConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.sendPending(ctx); err != nil {
		return nil, err
	}
	return c.Conn.PrepareContext(ctx, query)
}

func (c *pgLazyConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// ResetSession runs before the pool hands the connection out again.
func (c *pgLazyConn) ResetSession(ctx context.Context) error {
	c.begin, c.inTx = "", false
	c.dropDeferred()
	return c.Conn.ResetSession(ctx)
}

// pgLazyTx ends a transaction as pgx's own does (pgx.dbTx).
type pgLazyTx struct {
	c   *pgLazyConn
	ctx context.Context
}

func (t *pgLazyTx) Commit() error { return t.end("commit") }

func (t *pgLazyTx) Rollback() error { return t.end("rollback") }

func (t *pgLazyTx) end(q string) error {
	c := t.c
	c.inTx = false
	if q == "rollback" {
		c.dropDeferred() // never sent: nothing to undo
	}
	if c.begin != "" && len(c.deferred) == 0 {
		c.begin = "" // BEGIN never left: nothing to end
		return nil
	}
	pc := c.Conn.Conn()
	tag, err := c.endWithPending(t.ctx, q)
	if err != nil {
		if pc.PgConn().TxStatus() != 'I' {
			// Still in a transaction, or unknown: never pool it.
			_ = pc.Close(t.ctx)
		}
		return err
	}
	if q == "commit" && tag.String() == "ROLLBACK" {
		// The transaction had failed: COMMIT rolled it back.
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// endWithPending sends q (COMMIT or ROLLBACK), after the deferred writes
// and their BEGIN when any wait, in one batch.
func (c *pgLazyConn) endWithPending(ctx context.Context, q string) (pgconn.CommandTag, error) {
	pc := c.Conn.Conn()
	if !c.pending() {
		return pc.Exec(ctx, q)
	}
	br, err := c.withPending(ctx, q)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// beginSQL is the BEGIN of database/sql's options, as pgx's stdlib
// writes it.
func beginSQL(opts driver.TxOptions) (string, error) {
	q := "begin"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		q += " isolation level read uncommitted"
	case sql.LevelReadCommitted:
		q += " isolation level read committed"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		q += " isolation level repeatable read"
	case sql.LevelSerializable:
		q += " isolation level serializable"
	default:
		return "", errors.New("sqlstore: unsupported isolation level " + sql.IsolationLevel(opts.Isolation).String())
	}
	if opts.ReadOnly {
		q += " read only"
	}
	return q, nil
}
