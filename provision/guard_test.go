package provision_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// TestGuard: the guard runs first in the resolution's transaction; its
// writes commit with the login's (or with a refusal's audit event), its
// error rolls the whole resolution back
// and comes back unchanged without a retry, and a dry run does not call it.
func TestGuard(t *testing.T) {
	forEngines(t, func(t *testing.T, s *sqlstore.Store) {
		f := newFixture(t, s)
		var calls atomic.Int32
		once := func(key string) provision.Guard {
			return func(ctx context.Context, tx gatehouse.Tx) error {
				calls.Add(1)
				// The store's clock is the wall clock (t0 is the resolver's).
				if err := tx.UseOnce(ctx, key, time.Now().Add(time.Hour)); err != nil {
					// Not ECONFLICT: a retry would find the same key.
					return &gatehouse.Error{Code: gatehouse.EINVALID, Reason: "replayed", Err: err}
				}
				return nil
			}
		}
		resolve := func(g provision.Guard, id *gatehouse.Identity, mode provision.Mode) (*provision.Result, error) {
			return f.r.Resolve(provision.WithGuard(f.ctx, g), f.tenant, f.conn, id, mode)
		}
		before := f.counts()
		ana := f.identity("sub-ana", f.email("ana"))
		if res, err := resolve(once("flow:1"), ana, provision.Apply); err != nil || res.Outcome != provision.OutcomeCreated {
			t.Fatalf("first: %v %+v", err, res)
		}
		created := f.counts()
		if created == before {
			t.Fatal("nothing written")
		}
		// The same key again: the returning login is rolled back entirely
		// (no login.succeeded, no touched link), and tried once.
		calls.Store(0)
		audits := len(f.audit())
		if _, err := resolve(once("flow:1"), ana, provision.Apply); gatehouse.ErrorReason(err) != "replayed" {
			t.Fatalf("replay: %v", err)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("guard ran %d times, want 1", n)
		}
		if got := len(f.audit()); got != audits || f.counts() != created {
			t.Errorf("a refused guard left writes: audit %d→%d, counts %+v→%+v", audits, got, created, f.counts())
		}
		// A new user refused by the guard is not created.
		if _, err := resolve(once("flow:1"), f.identity("sub-bob", f.email("bob")), provision.Apply); gatehouse.ErrorReason(err) != "replayed" {
			t.Fatalf("new user, used key: %v", err)
		}
		f.view(func(tx gatehouse.Tx) error {
			if _, err := tx.GetUserByEmail(f.ctx, f.tenant.ID, f.email("bob")); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Errorf("user of a refused guard: %v", err)
			}
			return nil
		})
		// A refusal (JIT off) commits the guard's writes with its
		// login.refused event, in one transaction: the refused response's
		// key is spent, and nothing else is written.
		f.conn.JIT.Enabled = false
		defer func() { f.conn.JIT.Enabled = true }()
		refusedBefore := f.counts()
		res, err := resolve(once("flow:refused"), f.identity("sub-dan", f.email("dan")), provision.Apply)
		if gatehouse.ErrorReason(err) != provision.ReasonJITDisabled || res == nil {
			t.Fatalf("refusal: %v %+v", err, res)
		}
		if got, want := f.counts(), (counts{refusedBefore.users, refusedBefore.links, refusedBefore.memberships, refusedBefore.audit + 1, refusedBefore.outbox}); got != want {
			t.Errorf("after a refusal: counts %+v, want %+v", got, want)
		}
		if ev := f.lastAudit("login.refused"); ev == nil || ev.Details["subject"] != "sub-dan" {
			t.Errorf("refusal audit = %+v", ev)
		}
		if _, err := resolve(once("flow:refused"), f.identity("sub-dan", f.email("dan")), provision.Apply); gatehouse.ErrorReason(err) != "replayed" {
			t.Errorf("the refused login's key was not spent: %v", err)
		}
		f.conn.JIT.Enabled = true
		// A dry run does not call it.
		calls.Store(0)
		if _, err := resolve(once("flow:2"), f.identity("sub-cy", f.email("cy")), provision.DryRun); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 0 {
			t.Error("dry run called the guard")
		}
	})
}
