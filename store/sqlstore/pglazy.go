package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL transactions that send BEGIN with their first statement.
//
// Every statement on PostgreSQL is a round trip: a write of the client, a
// wake-up of a server process, a read. database/sql's BeginTx is one more
// before any work (pgx sends BEGIN and waits for its answer), so a login's
// transaction of nine statements took eleven round trips and a code grant
// of three took five. The frontend/backend protocol lets a client send
// several extended-query messages before it reads (PostgreSQL docs,
// "Pipeline Mode"); here BEGIN waits on the connection and leaves in one
// pgx batch with the transaction's first Exec. A transaction that starts
// with a query (whose rows database/sql reads through pgx's own driver
// type) sends BEGIN alone first, as before; so does a first Exec without
// arguments, which pgx runs in the simple protocol (a migration file may
// hold several statements, which a batch may not).
//
// Nothing else changes: the batch runs BEGIN and the statement in order,
// so the statement runs inside the transaction; if it fails, the
// transaction is aborted as it would be after a separate BEGIN, and
// database/sql rolls it back. A transaction that ran nothing commits and
// rolls back without a round trip.

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

// pgLazyConn is a pgx connection whose BEGIN may wait for the first Exec.
// database/sql uses a driver connection from one goroutine at a time.
type pgLazyConn struct {
	*stdlib.Conn
	begin string // the BEGIN statement not sent yet, or ""
}

func (c *pgLazyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.Conn.Conn().IsClosed() {
		return nil, driver.ErrBadConn
	}
	q, err := beginSQL(opts)
	if err != nil {
		return nil, err
	}
	c.begin = q
	return &pgLazyTx{c: c, ctx: ctx}, nil
}

// Begin is for drivers' older callers; database/sql calls BeginTx.
func (c *pgLazyConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// sendBegin sends a pending BEGIN on its own.
func (c *pgLazyConn) sendBegin(ctx context.Context) error {
	if c.begin == "" {
		return nil
	}
	q := c.begin
	c.begin = ""
	_, err := c.Conn.Conn().Exec(ctx, q)
	return err
}

func (c *pgLazyConn) ExecContext(ctx context.Context, query string, argsV []driver.NamedValue) (driver.Result, error) {
	if c.begin == "" || len(argsV) == 0 {
		if err := c.sendBegin(ctx); err != nil {
			return nil, err
		}
		return c.Conn.ExecContext(ctx, query, argsV)
	}
	pc := c.Conn.Conn()
	if pc.IsClosed() {
		return nil, driver.ErrBadConn
	}
	args := make([]any, len(argsV))
	for i, v := range argsV {
		args[i] = v.Value
	}
	b := &pgx.Batch{}
	b.Queue(c.begin)
	b.Queue(query, args...)
	c.begin = ""
	br := pc.SendBatch(ctx, b)
	_, err := br.Exec()
	var rows int64
	if err == nil {
		tag, xerr := br.Exec()
		rows, err = tag.RowsAffected(), xerr
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if pgconn.SafeToRetry(err) {
			// Nothing was sent (pgx's stdlib does the same).
			return nil, driver.ErrBadConn
		}
		return nil, err
	}
	return driver.RowsAffected(rows), nil
}

func (c *pgLazyConn) QueryContext(ctx context.Context, query string, argsV []driver.NamedValue) (driver.Rows, error) {
	if err := c.sendBegin(ctx); err != nil {
		return nil, err
	}
	return c.Conn.QueryContext(ctx, query, argsV)
}

// PrepareContext sends a pending BEGIN first: the statement it returns
// runs on pgx's connection directly, past ExecContext and QueryContext.
func (c *pgLazyConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.sendBegin(ctx); err != nil {
		return nil, err
	}
	return c.Conn.PrepareContext(ctx, query)
}

func (c *pgLazyConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// ResetSession runs before the pool hands the connection out again.
func (c *pgLazyConn) ResetSession(ctx context.Context) error {
	c.begin = ""
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
	if t.c.begin != "" {
		t.c.begin = "" // BEGIN never left: nothing to end
		return nil
	}
	pc := t.c.Conn.Conn()
	tag, err := pc.Exec(t.ctx, q)
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
