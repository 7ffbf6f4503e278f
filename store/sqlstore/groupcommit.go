package sqlstore

// Group commit for SQLite.
//
// Every SQLite Update runs on the one writer connection, so concurrent
// writes queue anyway; the commit (WAL append, and with synchronous=FULL an
// fsync) was about 20 % of a login's CPU and 30 % of a SCIM create's. Here
// the queued transactions are committed together: one BEGIN IMMEDIATE, each
// caller's fn in turn, one COMMIT.
//
//   - Atomic per caller: a fn that fails (or panics) gets its own error (or
//     panics again in its own goroutine) and nothing it wrote is kept; the
//     others of the batch still commit. A batch runs first without a
//     savepoint per fn; when a fn fails after a write, the batch is rolled
//     back and run again with one SAVEPOINT per fn (runShared). Nested
//     savepoints (t.guard) work inside.
//   - Isolated: the fns of a batch run one after another on one
//     connection, so each sees the database as if the earlier ones had
//     committed alone: the serial order they queued in.
//   - Durable: a caller hears of its success only after the shared COMMIT
//     returned; a failed COMMIT fails every caller of the batch.
//   - No added latency: there is no timer. The goroutine whose request is
//     first in the queue runs one batch of what is queued right now (at
//     most maxBatch), hands the lead to the next waiter and returns. At low
//     load a batch is one request, run as a plain transaction as before.
//   - When the shared transaction breaks half-way (SQLite rolls a whole
//     transaction back on some errors, such as a full disk; writertx.go
//     sees it and refuses the fn's later statements), the fn during which
//     it broke gets the error and the batch's other fns, done or not, are
//     run again one by one in transactions of their own — allowed because
//     fn may run more than once (see the package comment).
//
// PostgreSQL does not use this: it commits on the server, in parallel.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gatehouse-sso/gatehouse"
)

// maxBatch bounds the transactions committed together, so that one batch
// (and the wait of the last caller in it) stays short.
const maxBatch = 32

// commitReq is one Update waiting for, or running in, a batch.
type commitReq struct {
	ctx  context.Context
	fn   func(gatehouse.Tx) error
	wake chan struct{} // one send: the result is ready, or lead is set

	// Set under committer.mu:
	taken bool // in a batch, or chosen to lead: it can no longer leave the queue
	lead  bool // its goroutine runs the next batch

	// Set by the batch's leader before wake:
	err      error
	panicked bool
	pval     any
	done     bool
}

// committer queues SQLite writes and hands them to batches.
type committer struct {
	mu      sync.Mutex
	queue   []*commitReq
	running bool // a goroutine is leading a batch

	// For tests and profiles: batches of two or more run, and the
	// transactions in them.
	batches, batched atomic.Int64
}

// update runs fn in a batch and returns its own result.
func (c *committer) update(s *Store, ctx context.Context, fn func(gatehouse.Tx) error) error {
	r := &commitReq{ctx: ctx, fn: fn, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if !c.running {
		// Nobody leads, so the queue was empty: r is first.
		c.running = true
		r.taken, r.lead = true, true
	}
	lead := r.lead // read under the lock: a leader may set it from now on
	c.mu.Unlock()
	if !lead {
		select {
		case <-r.wake:
		case <-ctx.Done():
			if c.leave(r) {
				return mapErr(ctx.Err())
			}
			<-r.wake
		}
		lead = r.lead // set before the wake
	}
	if lead {
		c.lead(s)
	}
	if r.panicked {
		panic(r.pval)
	}
	return r.err
}

// leave takes r out of the queue if no batch has taken it yet.
func (c *committer) leave(r *commitReq) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.taken {
		return false
	}
	for i, q := range c.queue {
		if q == r {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			return true
		}
	}
	return false
}

// lead runs one batch, the first of which is the caller's own request, then
// passes the lead on to the next request in the queue.
func (c *committer) lead(s *Store) {
	c.mu.Lock()
	if len(c.queue) == 1 {
		// Alone: let the goroutines that are runnable right now (other
		// requests on their way to Update) queue behind us first, so
		// that they share this commit instead of paying for their own.
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	n := min(len(c.queue), maxBatch)
	batch := make([]*commitReq, n)
	copy(batch, c.queue)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	for _, r := range batch {
		r.taken = true
	}
	c.mu.Unlock()

	// Deferred so that the lead and every waiter are released even if the
	// batch stops half-way (runtime.Goexit from a test's fn, or a bug).
	defer func() {
		for _, r := range batch {
			if !r.done {
				r.err, r.done = errors.New("sqlstore: the write batch stopped before this transaction ran"), true
			}
		}
		c.mu.Lock()
		if len(c.queue) > 0 {
			next := c.queue[0]
			next.taken, next.lead = true, true
			c.mu.Unlock()
			next.wake <- struct{}{}
		} else {
			c.running = false
			c.mu.Unlock()
		}
		for _, r := range batch[1:] {
			r.wake <- struct{}{}
		}
	}()
	s.runBatch(batch)
}

// runBatch runs the requests' fns in one transaction; see the file comment.
// It runs them first without savepoints; if one fails after writing, it
// runs the batch again with them.
func (s *Store) runBatch(batch []*commitReq) {
	if len(batch) == 1 {
		s.runAlone(batch[0])
		return
	}
	s.commits.batches.Add(1)
	s.commits.batched.Add(int64(len(batch)))
	if again := s.runShared(batch, false); len(again) > 0 {
		if len(again) == 1 {
			s.runAlone(again[0])
			return
		}
		s.runShared(again, true)
	}
}

// runShared runs batch in one transaction and sets each request's result.
//
// With savepoints, each fn runs inside one of its own, so a fn that fails
// is rolled back alone. Without (the first run), nothing is copied to a
// savepoint's journal: SQLite's copies of the pages each fn changes, and
// the two statements per fn, were 4 % of a JIT login's CPU. A fn that fails
// having run no write leaves nothing in the transaction (a failed statement
// undoes its own changes), so the others go on; a fn that fails after a
// write cannot be undone alone, so the transaction is rolled back, the fn
// gets its error, and runShared returns the fns that had succeeded and
// those not yet run, for a run with savepoints (fns may run more than
// once). That is rare on the login path: a replayed login fails on its
// first write, and a refused one commits its refusal (package provision).
func (s *Store) runShared(batch []*commitReq, savepoints bool) (again []*commitReq) {
	// The shared transaction belongs to no caller: one giving up must not
	// roll back the others, so it lives until the last of them gives up
	// (waiting for the writer included). Each fn's statements still use
	// its caller's context.
	bg := context.Background()
	txCtx, stop := batchContext(batch)
	defer stop()
	sqlTx, err := s.writer.BeginTx(txCtx, s.d.writeTx)
	if err != nil {
		for _, r := range batch {
			r.err, r.done = s.d.mapErr(err), true
			if cerr := r.ctx.Err(); cerr != nil {
				r.err = mapErr(cerr) // a deadline is EUNAVAILABLE, as alone
			}
		}
		return nil
	}
	finished := false
	defer func() {
		if !finished {
			_ = sqlTx.Rollback()
		}
	}()
	savepoint := func(stmt string) error {
		if !savepoints {
			return nil
		}
		_, err := sqlTx.ExecContext(bg, stmt)
		return err
	}
	abort := func() {
		finished = true
		_ = sqlTx.Rollback()
	}
	// broke ends the shared transaction, which SQLite or fn ended under
	// the batch, and runs again, each alone, those that had succeeded and
	// rest.
	var ok []*commitReq // ran and succeeded inside the shared transaction
	broke := func(rest []*commitReq) {
		abort()
		s.runEachAlone(ok, rest)
	}
	var txs []*tx
	defer func() { endCatalogWrite(txs...) }()
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err, r.done = mapErr(err), true
			continue
		}
		if err := savepoint("SAVEPOINT gh_batch"); err != nil {
			broke(batch[i:])
			return nil
		}
		t := &tx{s: s, sqlTx: sqlTx}
		txs = append(txs, t)
		ferr, panicked, pval := callFn(r.fn, t)
		succeeded := ferr == nil && !panicked
		if s.writerTx.rolledBack() {
			// SQLite rolled the shared transaction back during fn (its
			// later statements were refused, writertx.go).
			r.err, r.panicked, r.pval, r.done = ferr, panicked, pval, true
			if succeeded {
				r.err = s.d.mapErr(errTxGone) // fn said yes, but the transaction under it is gone
			}
			broke(batch[i+1:])
			return nil
		}
		if succeeded {
			if err := savepoint("RELEASE SAVEPOINT gh_batch"); err != nil {
				r.err, r.done = s.d.mapErr(err), true
				broke(batch[i+1:])
				return nil
			}
			ok = append(ok, r)
			continue
		}
		r.err, r.panicked, r.pval, r.done = ferr, panicked, pval, true
		if !savepoints {
			if !t.wrote {
				continue // nothing of fn's is in the transaction
			}
			abort()
			return append(ok, batch[i+1:]...)
		}
		if err := errors.Join(savepoint("ROLLBACK TO SAVEPOINT gh_batch"), savepoint("RELEASE SAVEPOINT gh_batch")); err != nil {
			// The failure took the shared transaction with it.
			broke(batch[i+1:])
			return nil
		}
	}
	finished = true
	err = sqlTx.Commit()
	for _, r := range ok {
		r.err, r.done = s.d.mapErr(err), true
	}
	return nil
}

// batchContext is done once every request's context is done.
func batchContext(batch []*commitReq) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, r := range batch {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// runEachAlone runs again, each in a transaction of its own, the requests
// of a broken batch that had succeeded (their writes were rolled back with
// the batch) and those that had not run yet.
func (s *Store) runEachAlone(lists ...[]*commitReq) {
	for _, l := range lists {
		for _, r := range l {
			if r.ctx.Err() != nil {
				r.err, r.done = mapErr(r.ctx.Err()), true
				continue
			}
			s.runAlone(r)
		}
	}
}

// runAlone runs one request as a plain transaction.
func (s *Store) runAlone(r *commitReq) {
	r.err, r.panicked, r.pval = callFn(func(gatehouse.Tx) error {
		return s.run(r.ctx, s.writer, s.d.writeTx, r.fn)
	}, nil)
	r.done = true
}

// callFn calls fn and turns a panic into a value for its owner to re-raise.
func callFn(fn func(gatehouse.Tx) error, t gatehouse.Tx) (err error, panicked bool, pval any) {
	defer func() {
		if v := recover(); v != nil {
			panicked, pval = true, v
			err = fmt.Errorf("sqlstore: transaction panicked: %v", v)
		}
	}()
	return fn(t), false, nil
}
