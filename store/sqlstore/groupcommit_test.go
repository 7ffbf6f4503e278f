package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

func openEngine(t *testing.T, engine string) *Store {
	t.Helper()
	s, err := Open(context.Background(), testdb.URL(t, engine), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// slugs lists the tenants' slugs, sorted.
func slugs(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT slug FROM tenants ORDER BY slug`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type batchResult struct {
	err   error
	panic any
}

// runBatched holds the writer with one Update, queues fns in order behind
// it, then lets them all run: they form one batch (len(fns) <= maxBatch).
func runBatched(t *testing.T, s *Store, fns []func(gatehouse.Tx) error) []batchResult {
	t.Helper()
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	blocker := make(chan error, 1)
	go func() {
		blocker <- s.Update(ctx, func(gatehouse.Tx) error { close(started); <-release; return nil })
	}()
	<-started
	results := make([]batchResult, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { results[i].panic = recover() }()
			results[i].err = s.Update(ctx, fn)
		}()
		waitFor(t, "the queue", func() bool { return s.commits.queued() == i+1 })
	}
	before := s.commits.batches.Load()
	close(release)
	wg.Wait()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	if got := s.commits.batches.Load() - before; len(fns) > 1 && got != 1 {
		t.Fatalf("%d batches, want 1", got)
	}
	return results
}

func createTenant(slug string) func(gatehouse.Tx) error {
	return func(tx gatehouse.Tx) error {
		return tx.CreateTenant(context.Background(), &gatehouse.Tenant{Slug: slug, Name: slug})
	}
}

var errDeliberate = errors.New("deliberate failure")

// TestGroupCommitIsolatesFailures: in one batch, a failing fn, a panicking
// fn and a fn that survives a unique violation through t.guard's nested
// savepoint; each caller gets its own result and only the successful
// writes stay.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := openEngine(t, "sqlite")
	ctx := context.Background()
	if err := s.Update(ctx, createTenant("taken")); err != nil {
		t.Fatal(err)
	}
	res := runBatched(t, s, []func(gatehouse.Tx) error{
		createTenant("a"),
		func(tx gatehouse.Tx) error { // writes, then fails: rolled back
			if err := createTenant("failed")(tx); err != nil {
				return err
			}
			return errDeliberate
		},
		createTenant("b"),
		func(tx gatehouse.Tx) error { // writes, then panics
			if err := createTenant("panicked")(tx); err != nil {
				return err
			}
			panic("boom")
		},
		func(tx gatehouse.Tx) error { // a conflict caught, then goes on
			err := createTenant("taken")(tx)
			if !gatehouse.IsCode(err, gatehouse.ECONFLICT) {
				return fmt.Errorf("want a conflict, got %v", err)
			}
			return createTenant("after-conflict")(tx)
		},
		createTenant("a"), // conflicts with the first fn of the batch
		createTenant("c"),
	})
	for i, want := range []string{"", "deliberate", "", "panic", "", "conflict", ""} {
		r := res[i]
		switch want {
		case "":
			if r.err != nil || r.panic != nil {
				t.Errorf("fn %d: %v, panic %v", i, r.err, r.panic)
			}
		case "deliberate":
			if !errors.Is(r.err, errDeliberate) {
				t.Errorf("fn %d: %v", i, r.err)
			}
		case "panic":
			if r.panic != "boom" {
				t.Errorf("fn %d: panic %v, err %v", i, r.panic, r.err)
			}
		case "conflict":
			if !gatehouse.IsCode(r.err, gatehouse.ECONFLICT) {
				t.Errorf("fn %d: %v", i, r.err)
			}
		}
	}
	got := fmt.Sprint(slugs(t, s))
	if want := "[a after-conflict b c taken]"; got != want {
		t.Errorf("tenants %s, want %s", got, want)
	}
	// The writer is usable afterwards, batched or not.
	if err := s.Update(ctx, createTenant("later")); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitBrokenBatch: a fn that ends the shared transaction under
// the others (as SQLite does on an interrupted write) gets an error; the
// batch's other fns, before and after it, are run again alone and commit.
func TestGroupCommitBrokenBatch(t *testing.T) {
	s := openEngine(t, "sqlite")
	res := runBatched(t, s, []func(gatehouse.Tx) error{
		createTenant("before"),
		func(gt gatehouse.Tx) error {
			if err := createTenant("breaker")(gt); err != nil {
				return err
			}
			_, err := gt.(*tx).sqlTx.Exec("ROLLBACK")
			return err // nil: the fn believes all is well
		},
		createTenant("after"),
	})
	if res[0].err != nil || res[2].err != nil {
		t.Errorf("innocent fns failed: %v, %v", res[0].err, res[2].err)
	}
	if res[1].err == nil {
		t.Error("the fn that broke the batch succeeded")
	}
	if got, want := fmt.Sprint(slugs(t, s)), "[after before]"; got != want {
		t.Errorf("tenants %s, want %s", got, want)
	}
}

// TestNoStatementAfterSQLiteRollback: once SQLite has rolled a writer's
// transaction back (as it does on a full disk or an I/O error), a fn that
// swallows the error and goes on gets errors for its later statements
// instead of running them in autocommit mode, one commit each: nothing of
// it is written, batched or alone, and the writer works afterwards.
func TestNoStatementAfterSQLiteRollback(t *testing.T) {
	breakThenWrite := func(gt gatehouse.Tx) error {
		if err := createTenant("before-break")(gt); err != nil {
			return err
		}
		if _, err := gt.(*tx).sqlTx.Exec("ROLLBACK"); err != nil {
			return err
		}
		err := createTenant("after-break")(gt)
		if err == nil {
			return errors.New("a statement ran after the rollback")
		}
		return nil // swallowed: the fn believes all is well
	}
	t.Run("alone", func(t *testing.T) {
		s := openEngine(t, "sqlite")
		if err := s.Update(context.Background(), breakThenWrite); err == nil {
			t.Error("Update succeeded")
		}
		if got := slugs(t, s); len(got) != 0 {
			t.Errorf("tenants %v written", got)
		}
		if err := s.Update(context.Background(), createTenant("later")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("batched", func(t *testing.T) {
		s := openEngine(t, "sqlite")
		res := runBatched(t, s, []func(gatehouse.Tx) error{createTenant("a"), breakThenWrite, createTenant("b")})
		if res[0].err != nil || res[2].err != nil {
			t.Errorf("innocent fns failed: %v, %v", res[0].err, res[2].err)
		}
		if res[1].err == nil || gatehouse.ErrorCode(res[1].err) != gatehouse.EINTERNAL {
			t.Errorf("the breaking fn: %v, want an internal error", res[1].err)
		}
		if got, want := fmt.Sprint(slugs(t, s)), "[a b]"; got != want {
			t.Errorf("tenants %s, want %s", got, want)
		}
	})
	t.Run("disk full", func(t *testing.T) {
		// SQLITE_FULL from a statement without a statement journal rolls
		// the whole transaction back (https://sqlite.org/lang_transaction.html);
		// max_page_count makes the file full.
		s := openEngine(t, "sqlite")
		ctx := context.Background()
		var pages int
		if err := s.DB().QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
			t.Fatal(err)
		}
		var full error
		err := s.Update(ctx, func(gt gatehouse.Tx) error {
			if err := createTenant("before-full")(gt); err != nil {
				return err
			}
			full = gt.CreateTenant(ctx, &gatehouse.Tenant{Slug: "huge", Name: strings.Repeat("x", 64<<10)})
			if err := createTenant("after-full")(gt); err == nil {
				return errors.New("a statement ran after SQLite's rollback")
			}
			return nil // swallowed
		})
		if full == nil || err == nil {
			t.Fatalf("the full write: %v; Update: %v", full, err)
		}
		if _, err := s.DB().ExecContext(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
			t.Fatal(err)
		}
		if got := slugs(t, s); len(got) != 0 {
			t.Errorf("tenants %v written", got)
		}
		if err := s.Update(ctx, createTenant("later")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestGroupCommitRunsAgainOnlyAfterAFailedWrite: a batch runs without a
// savepoint per fn. A fn that fails before writing anything (a conflict on
// its first statement, as a replayed login's keys) costs the others
// nothing; one that fails after a write makes the batch run again with
// savepoints, the fns before it twice, and each caller still gets its own
// result with only the successful writes kept.
func TestGroupCommitRunsAgainOnlyAfterAFailedWrite(t *testing.T) {
	counted := func(runs *atomic.Int32, fn func(gatehouse.Tx) error) func(gatehouse.Tx) error {
		return func(tx gatehouse.Tx) error { runs.Add(1); return fn(tx) }
	}
	for _, tc := range []struct {
		name        string
		failing     func(gatehouse.Tx) error
		first, last int32 // runs of the fns before and after the failing one
		want        string
	}{
		{"conflict on the first write", createTenant("taken"), 1, 1, "[a b taken]"},
		{"read, then fails", func(gt gatehouse.Tx) error {
			if _, err := gt.GetTenantBySlug(context.Background(), "taken"); err != nil {
				return err
			}
			return errDeliberate
		}, 1, 1, "[a b taken]"},
		{"writes, then fails", func(gt gatehouse.Tx) error {
			if err := createTenant("failed")(gt); err != nil {
				return err
			}
			return errDeliberate
		}, 2, 1, "[a b taken]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openEngine(t, "sqlite")
			if err := s.Update(context.Background(), createTenant("taken")); err != nil {
				t.Fatal(err)
			}
			var first, failing, last atomic.Int32
			res := runBatched(t, s, []func(gatehouse.Tx) error{
				counted(&first, createTenant("a")), counted(&failing, tc.failing), counted(&last, createTenant("b")),
			})
			if res[0].err != nil || res[2].err != nil {
				t.Errorf("innocent fns failed: %v, %v", res[0].err, res[2].err)
			}
			if res[1].err == nil {
				t.Error("the failing fn succeeded")
			}
			if got := [3]int32{first.Load(), failing.Load(), last.Load()}; got != [3]int32{tc.first, 1, tc.last} {
				t.Errorf("runs %v, want [%d 1 %d]", got, tc.first, tc.last)
			}
			if got := fmt.Sprint(slugs(t, s)); got != tc.want {
				t.Errorf("tenants %s, want %s", got, tc.want)
			}
		})
	}
}

// TestGroupCommitFailedCommit: when the shared COMMIT fails, every caller
// of the batch gets an error and nothing of the batch is written.
func TestGroupCommitFailedCommit(t *testing.T) {
	s := openEngine(t, "sqlite")
	res := runBatched(t, s, []func(gatehouse.Tx) error{
		createTenant("x"),
		func(gt gatehouse.Tx) error {
			// A foreign key violation checked only at COMMIT.
			t := gt.(*tx)
			if _, err := t.exec(context.Background(), `PRAGMA defer_foreign_keys = ON`); err != nil {
				return err
			}
			_, err := t.exec(context.Background(), `INSERT INTO tenant_domains (domain, tenant_id, created_at) VALUES ('x.example', 'ten_missing', 0)`)
			return err
		},
		createTenant("y"),
	})
	for i, r := range res {
		if r.err == nil {
			t.Errorf("fn %d succeeded although the commit failed", i)
		}
	}
	if got := slugs(t, s); len(got) != 0 {
		t.Errorf("tenants %v written by a failed commit", got)
	}
}

// TestGroupCommitCancelWhileQueued: a caller that gives up while queued
// leaves the queue at once and its fn never runs.
func TestGroupCommitCancelWhileQueued(t *testing.T) {
	s := openEngine(t, "sqlite")
	started, release := make(chan struct{}), make(chan struct{})
	go s.Update(context.Background(), func(gatehouse.Tx) error { close(started); <-release; return nil })
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ran := false
	go func() { done <- s.Update(ctx, func(tx gatehouse.Tx) error { ran = true; return nil }) }()
	waitFor(t, "the queue", func() bool { return s.commits.queued() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	close(release)
	if err := s.Update(context.Background(), createTenant("next")); err != nil {
		t.Fatal(err)
	}
	if ran || s.commits.queued() != 0 {
		t.Errorf("ran %v, queued %d", ran, s.commits.queued())
	}
}

// TestGroupCommitDeadlineWhileWriterBusy: a batch waiting for a writer
// connection held outside the store's writes (a backup) gives up when its
// callers' deadlines pass, as a lone Update does.
func TestGroupCommitDeadlineWhileWriterBusy(t *testing.T) {
	s := openEngine(t, "sqlite")
	bg := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	go s.Update(bg, func(gatehouse.Tx) error { close(started); <-release; return nil })
	<-started
	held, unhold := make(chan struct{}), make(chan struct{})
	go func() {
		conn, err := s.DB().Conn(bg) // waits for the blocker's commit
		if err != nil {
			t.Error(err)
			return
		}
		close(held)
		<-unhold
		conn.Close()
	}()
	waitFor(t, "the connection request", func() bool { return s.DB().Stats().WaitCount >= 1 })
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
			defer cancel()
			errs <- s.Update(ctx, createTenant(fmt.Sprint("late", i)))
		}()
		waitFor(t, "the queue", func() bool { return s.commits.queued() == i+1 })
	}
	close(release)
	<-held
	for range 2 {
		select {
		case err := <-errs:
			if !gatehouse.IsCode(err, gatehouse.EUNAVAILABLE) {
				t.Errorf("got %v, want EUNAVAILABLE", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a queued Update outlived its deadline")
		}
	}
	close(unhold)
	if err := s.Update(bg, createTenant("next")); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(slugs(t, s)); got != "[next]" {
		t.Errorf("tenants %s", got)
	}
}

// TestUpdateStress: many concurrent writers, a third of which fail after
// writing and some of which conflict, on both engines; the final rows are
// exactly the successful ones.
func TestUpdateStress(t *testing.T) {
	const workers, each = 200, 6
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			s := openEngine(t, engine)
			ctx := context.Background()
			var mu sync.Mutex
			var ok []string
			failed, conflicts := 0, 0
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						slug := fmt.Sprintf("w%03d-%d", w, i)
						fail := (w+i)%3 == 0
						if (w+i)%7 == 0 {
							// Everyone of these races for the same few slugs.
							slug = fmt.Sprintf("shared-%d", i)
						}
						err := s.Update(ctx, func(tx gatehouse.Tx) error {
							if err := createTenant(slug)(tx); err != nil {
								return err
							}
							if fail {
								return errDeliberate
							}
							return nil
						})
						mu.Lock()
						switch {
						case err == nil:
							ok = append(ok, slug)
						case errors.Is(err, errDeliberate):
							failed++
						case gatehouse.IsCode(err, gatehouse.ECONFLICT):
							conflicts++
						default:
							t.Errorf("%s: %v", slug, err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			sort.Strings(ok)
			if got := slugs(t, s); fmt.Sprint(got) != fmt.Sprint(ok) {
				t.Errorf("%d tenants in the database, %d acknowledged", len(got), len(ok))
			}
			if len(ok)+failed+conflicts != workers*each {
				t.Errorf("%d ok + %d failed + %d conflicts != %d", len(ok), failed, conflicts, workers*each)
			}
			if s.commits != nil {
				t.Logf("%d writes: %d batches of %d transactions", workers*each, s.commits.batches.Load(), s.commits.batched.Load())
			}
		})
	}
}

// BenchmarkGroupCommit compares the same writes with group commit off
// (one transaction per Update, as before) and on, in one run: one writer
// at a time (latency at low load must not rise) and 16 at once.
//
//	go test ./store/sqlstore -run '^$' -bench GroupCommit -benchtime 2s
func BenchmarkGroupCommit(b *testing.B) {
	for _, writers := range []string{"serial", "parallel"} {
		for _, mode := range []string{"off", "on"} {
			b.Run(writers+"/"+mode, func(b *testing.B) { benchGroupCommit(b, mode == "on", writers == "parallel") })
		}
	}
}

func benchGroupCommit(b *testing.B, on, parallel bool) {
	s, err := Open(context.Background(), testdb.URL(b, "sqlite"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if !on {
		s.commits = nil
	}
	ctx := context.Background()
	te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
	if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateTenant(ctx, te) }); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	write := func() error {
		i := n.Add(1)
		return s.Update(ctx, func(tx gatehouse.Tx) error {
			u := &gatehouse.User{TenantID: te.ID, Username: fmt.Sprintf("user%d", i), Email: fmt.Sprintf("user%d@acme.com", i)}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: te.ID, ActorType: "scim", ActorID: "tok",
				Action: "user.created", TargetType: "user", TargetID: u.ID})
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(8) // 16 writers on 2 cores, as in the load test
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := write(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for range b.N {
			if err := write(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if s.commits != nil && s.commits.batches.Load() > 0 {
		b.ReportMetric(float64(s.commits.batched.Load())/float64(s.commits.batches.Load()), "tx/batch")
	}
}

// TestWriterCancelBetweenStatements: the writer's statements are not
// interrupted mid-way (cachingConn.callCtx), but a caller that gives up
// fails at its next statement and nothing of its transaction stays, alone
// or in a batch with a caller that commits.
func TestWriterCancelBetweenStatements(t *testing.T) {
	s := openEngine(t, "sqlite")
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			prefix := fmt.Sprintf("c%v-", batched)
			release := make(chan struct{})
			var other chan error
			if batched {
				// Hold the writer so that both callers queue and run in one batch.
				started := make(chan struct{})
				go s.Update(context.Background(), func(gatehouse.Tx) error { close(started); <-release; return nil })
				<-started
				other = make(chan error, 1)
				go func() { other <- s.Update(context.Background(), createTenant(prefix+"kept")) }()
				waitFor(t, "the queue", func() bool { return s.commits.queued() == 1 })
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- s.Update(ctx, func(tx gatehouse.Tx) error {
					if err := tx.CreateTenant(ctx, &gatehouse.Tenant{Slug: prefix + "first", Name: "first"}); err != nil {
						return err
					}
					cancel()
					return tx.CreateTenant(ctx, &gatehouse.Tenant{Slug: prefix + "second", Name: "second"})
				})
			}()
			if batched {
				waitFor(t, "the queue", func() bool { return s.commits.queued() == 2 })
			}
			close(release)
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
			var want []string
			if batched {
				if err := <-other; err != nil {
					t.Fatalf("the other caller: %v", err)
				}
				want = []string{prefix + "kept"}
			}
			var got []string
			for _, slug := range slugs(t, s) {
				if strings.HasPrefix(slug, prefix) {
					got = append(got, slug)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("tenants %v, want %v", got, want)
			}
		})
	}
}
