package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
)

// SQLite connections that keep their prepared statements.
//
// Parsing and planning a statement is about half the cost of a small
// SQLite query (measured here: 78 µs unprepared, 39 µs prepared, for a
// user lookup). database/sql only reuses statements prepared on the DB,
// which needs a free connection to prepare on — and the writer has one,
// held by the transaction running the query. So the cache lives a level
// lower: each driver connection keeps a statement per query text and runs
// ExecContext/QueryContext through it. A driver.Conn is used by one
// goroutine at a time (database/sql's guarantee), so the cache needs no
// lock. PostgreSQL needs none of this: pgx caches statements itself.

// maxCachedStmts bounds the statements kept per connection; most queries
// are constants, but filtered lists build their text.
const maxCachedStmts = 256

// sqliteConnector opens modernc.org/sqlite connections with a statement cache.
type sqliteConnector struct {
	drv driver.Driver
	dsn string
	// uninterruptible: statements are not interrupted when their context
	// ends (see cachingConn.callCtx); the writer's connection.
	uninterruptible bool
	// tx follows the writer's transaction (writertx.go); nil on readers.
	tx *writerTx
}

func (c *sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	for _, ok := range []bool{
		implements[driver.ConnBeginTx](conn), implements[driver.ConnPrepareContext](conn),
		implements[driver.ExecerContext](conn), implements[driver.QueryerContext](conn),
	} {
		if !ok {
			conn.Close()
			return nil, errors.New("sqlstore: the sqlite driver lacks a context method")
		}
	}
	if c.tx != nil {
		if err := c.tx.watch(conn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return &cachingConn{Conn: conn, stmts: map[string]*cachedStmt{}, uninterruptible: c.uninterruptible, tx: c.tx}, nil
}

func (c *sqliteConnector) Driver() driver.Driver { return c.drv }

func implements[T any](v any) bool { _, ok := v.(T); return ok }

type cachedStmt struct {
	st   driver.Stmt
	busy bool // rows of it are open
}

type cachingConn struct {
	driver.Conn
	stmts           map[string]*cachedStmt
	uninterruptible bool
	tx              *writerTx // nil on readers
}

// callCtx is the context a call hands the driver. modernc interrupts a
// statement whose context ends by starting a goroutine per statement
// that waits on ctx.Done() (sqlite interruptOnDone): on the login path,
// where every statement carries the request's context, that was 5 % of
// the CPU of a sign-in. The writer's statements are short (indexed
// writes, a purge bounded to 1,000 rows), so an uninterruptible
// connection checks the context before each call and runs the call under
// a context that cannot end: a caller that gives up still fails at its
// next statement, and database/sql still rolls its transaction back. A
// wait for another process's lock stays bounded by busy_timeout. Readers
// keep the interruption: a scan of a large table may be long.
//
// On the writer it also refuses every call inside a transaction that
// SQLite rolled back (writertx.go).
func (c *cachingConn) callCtx(ctx context.Context) (context.Context, error) {
	if err := c.tx.check(); err != nil {
		return nil, err
	}
	if !c.uninterruptible || ctx.Done() == nil {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

var (
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)

// stmt returns the statement for query and the function that hands it
// back. A statement whose rows are still open (a query run while reading
// another of the same text) is not shared: a fresh one is prepared and
// closed after use.
func (c *cachingConn) stmt(ctx context.Context, query string) (driver.Stmt, func(), error) {
	cs, ok := c.stmts[query]
	if ok && !cs.busy {
		cs.busy = true
		return cs.st, func() { cs.busy = false }, nil
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	if ok {
		return st, func() { st.Close() }, nil
	}
	if len(c.stmts) >= maxCachedStmts {
		for q, old := range c.stmts {
			if !old.busy {
				old.st.Close()
				delete(c.stmts, q)
			}
		}
	}
	cs = &cachedStmt{st: st, busy: true}
	c.stmts[query] = cs
	return st, func() { cs.busy = false }, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ctx, err := c.callCtx(ctx)
	if err != nil {
		return nil, err
	}
	st, release, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	defer release()
	return st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ctx, err := c.callCtx(ctx)
	if err != nil {
		return nil, err
	}
	st, release, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		release()
		return nil, err
	}
	return &releasingRows{Rows: rows, release: release}, nil
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	ctx, err := c.callCtx(ctx)
	if err != nil {
		return nil, err
	}
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	ctx, err := c.callCtx(ctx)
	if err != nil {
		return nil, err
	}
	if c.tx == nil {
		return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	}
	dtx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return c.tx.began(dtx), nil
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.st.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.Conn.Close())...)
}

// releasingRows hands its statement back when closed.
type releasingRows struct {
	driver.Rows
	release func()
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

func (r *releasingRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *releasingRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
