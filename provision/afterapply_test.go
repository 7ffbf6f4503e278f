package provision_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// TestAfterApply: the hook runs inside the resolution's transaction for a
// login that signs someone in, its writes commit with the user's, its
// error rolls everything back, and it does not run for refusals, pending
// users or dry runs.
func TestAfterApply(t *testing.T) {
	forEnginesBothPaths(t, func(t *testing.T, s *sqlstore.Store) {
		f := newFixture(t, s)
		var calls int
		var sawUser string
		hookEvent := func(action, userID string) *gatehouse.AuditEvent {
			return &gatehouse.AuditEvent{ID: gatehouse.NewID("aud"), TenantID: f.tenant.ID,
				Time: t0, ActorType: "test", ActorID: "hook", Action: action, TargetType: "user", TargetID: userID}
		}
		marker := func(ctx context.Context, tx gatehouse.Tx, res *provision.Result) error {
			calls++
			// The new user is visible in the hook's transaction.
			u, err := tx.GetUser(ctx, f.tenant.ID, res.User.ID)
			if err != nil {
				return err
			}
			sawUser = u.Email
			// One event written at once, one into the resolution's batch
			// (as op.AnswerLogin writes an app's sign-in).
			if err := gatehouse.AppendAudits(ctx, tx, hookEvent("test.batched", u.ID)); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, hookEvent("test.hook", u.ID))
		}
		resolve := func(hook provision.AfterApply, id *gatehouse.Identity, mode provision.Mode) (*provision.Result, error) {
			return f.r.Resolve(provision.WithAfterApply(f.ctx, hook), f.tenant, f.conn, id, mode)
		}
		events := func(action string) int {
			var n int
			f.view(func(tx gatehouse.Tx) error {
				evs, _, err := tx.ListAudit(f.ctx, f.tenant.ID, gatehouse.AuditFilter{Action: action}, gatehouse.Page{Limit: 100})
				n = len(evs)
				return err
			})
			return n
		}
		hookEvents := func() int { return events("test.hook") }

		// JIT creation and a returning login: the hook runs once each and
		// commits with them.
		ana := f.identity("sub-ana", f.email("ana"))
		for _, want := range []string{provision.OutcomeCreated, provision.OutcomeExisting} {
			res, err := resolve(marker, ana, provision.Apply)
			if err != nil || res.Outcome != want {
				t.Fatalf("%s: %v %+v", want, err, res)
			}
		}
		if calls != 2 || sawUser != f.email("ana") || hookEvents() != 2 || events("test.batched") != 2 {
			t.Fatalf("calls %d user %q events %d batched %d", calls, sawUser, hookEvents(), events("test.batched"))
		}

		// A failing hook rolls back the new user and the events it added
		// to the batch.
		boom := errors.New("boom")
		bob := f.identity("sub-bob", f.email("bob"))
		failing := func(ctx context.Context, tx gatehouse.Tx, res *provision.Result) error {
			if err := gatehouse.AppendAudits(ctx, tx, hookEvent("test.batched", res.User.ID)); err != nil {
				return err
			}
			return boom
		}
		if _, err := resolve(failing, bob, provision.Apply); !errors.Is(err, boom) {
			t.Fatalf("failing hook: %v", err)
		}
		if n := events("test.batched"); n != 2 {
			t.Errorf("%d batched events after a failing hook, want 2", n)
		}
		f.view(func(tx gatehouse.Tx) error {
			if _, err := tx.GetUserByEmail(f.ctx, f.tenant.ID, f.email("bob")); !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
				t.Errorf("user of a rolled-back login: %v", err)
			}
			return nil
		})

		// No hook for a dry run, a refusal or a pending user.
		calls = 0
		if _, err := resolve(marker, f.identity("sub-cy", f.email("cy")), provision.DryRun); err != nil {
			t.Fatal(err)
		}
		f.conn.JIT.Enabled = false
		if _, err := resolve(marker, f.identity("sub-dee", f.email("dee")), provision.Apply); gatehouse.ErrorReason(err) != provision.ReasonJITDisabled {
			t.Fatalf("jit disabled: %v", err)
		}
		f.conn.JIT.Enabled, f.conn.JIT.RequireApproval = true, true
		if res, err := resolve(marker, f.identity("sub-eve", f.email("eve")), provision.Apply); gatehouse.ErrorReason(err) != provision.ReasonPendingApproval || res.Outcome != provision.OutcomePending {
			t.Fatalf("pending: %v %+v", err, res)
		}
		if calls != 0 {
			t.Fatalf("hook ran %d times for dry run, refusal and pending", calls)
		}
	})
}
