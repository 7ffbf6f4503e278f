package sqlstore

import (
	"database/sql/driver"
	"errors"
	"sync/atomic"

	"modernc.org/sqlite"
)

// writerTx follows the transaction of SQLite's writer connection.
//
// SQLite rolls a whole transaction back by itself on some errors (a full
// disk, an I/O error, out of memory: "Response To Errors Within A
// Transaction", https://sqlite.org/lang_transaction.html). A caller that
// caught such an error and went on would run its next statements in
// autocommit mode, each committed at once: half a transaction written.
// SQLite's rollback hook marks the transaction gone, and the writer refuses
// every statement after that until database/sql ends the transaction.
//
// The group commit (groupcommit.go) also reads gone after each caller's fn,
// which lets it run a batch without a savepoint per caller.
//
// The writer pool holds one connection at a time, and the hooks run on the
// goroutine running the statement; the atomics keep the race detector's
// view of a reconnection simple.
type writerTx struct {
	open atomic.Bool // a transaction begun through BeginTx has not ended
	gone atomic.Bool // SQLite rolled back the open transaction
}

// errTxGone is what a statement gets after SQLite rolled its transaction
// back: it is not run.
var errTxGone = errors.New("sqlstore: SQLite rolled the transaction back after an error; the statement was not run")

// watch registers the rollback hook on a new writer connection.
func (w *writerTx) watch(conn driver.Conn) error {
	h, ok := conn.(interface {
		RegisterRollbackHook(sqlite.RollbackHookFn)
	})
	if !ok {
		return errors.New("sqlstore: the sqlite driver has no rollback hook")
	}
	// SQLite calls it for every rollback of a whole transaction, ours
	// (Tx.Rollback) included, never for ROLLBACK TO a savepoint.
	h.RegisterRollbackHook(func() { w.gone.Store(true) })
	return nil
}

// check refuses a statement of a transaction SQLite rolled back.
func (w *writerTx) check() error {
	if w != nil && w.open.Load() && w.gone.Load() {
		return errTxGone
	}
	return nil
}

// began starts following a transaction BEGIN opened, and wraps the
// driver's transaction so that its end is seen.
func (w *writerTx) began(dtx driver.Tx) driver.Tx {
	w.gone.Store(false)
	w.open.Store(true)
	return &watchedTx{Tx: dtx, w: w}
}

// rolledBack reports whether SQLite rolled the open transaction back.
func (w *writerTx) rolledBack() bool { return w != nil && w.gone.Load() }

type watchedTx struct {
	driver.Tx
	w *writerTx
}

func (t *watchedTx) Commit() error {
	defer t.w.open.Store(false)
	return t.Tx.Commit()
}

func (t *watchedTx) Rollback() error {
	defer t.w.open.Store(false)
	return t.Tx.Rollback()
}
