package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// parallel runs fn(i) for i in [0, n) at once and returns the errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = fn(i)
		}()
	}
	start.Done()
	done.Wait()
	return errs
}

// Fifty people arrive at 9:00: every writer succeeds, none fails with
// "database is locked" or a serialization error.
func testConcurrentWriters(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	g := newGroup(t, s, te.ID, "Everyone")
	c := newConnection(t, s, te.ID, "okta")
	const n = 50
	errs := parallel(n, func(i int) error {
		return s.Update(ctx, func(tx gatehouse.Tx) error {
			u := &gatehouse.User{TenantID: te.ID, Email: fmtN("user", i) + "@acme.com", Username: fmtN("user", i),
				Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if err := tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c.ID, Subject: u.Email, UserID: u.ID}); err != nil {
				return err
			}
			if err := tx.AddMembership(ctx, &gatehouse.Membership{TenantID: te.ID, GroupID: g.ID, UserID: u.ID, ManagedBy: gatehouse.ManagedByConnection(c.ID)}); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: te.ID, Action: "user.jit_created", TargetID: u.ID, Time: time.Now()})
		})
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	view(t, s, func(tx gatehouse.Tx) error {
		n2, err := tx.CountUsers(ctx, te.ID, gatehouse.UserFilter{GroupID: g.ID})
		if err != nil {
			return err
		}
		if n2 != n {
			t.Errorf("%d users in the group, want %d", n2, n)
		}
		grp, err := tx.GetGroup(ctx, te.ID, g.ID)
		if err != nil {
			return err
		}
		if grp.MemberCount != n {
			t.Errorf("MemberCount = %d, want %d", grp.MemberCount, n)
		}
		return nil
	})
}

// The same person clicks twice: exactly one account, and every other
// attempt is a clean ECONFLICT the caller can act on, never another error.
func testConcurrentSameEmail(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	const n = 20
	errs := parallel(n, func(i int) error {
		return s.Update(ctx, func(tx gatehouse.Tx) error {
			return tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Email: "Ana@acme.com", Username: fmtN("ana", i),
				Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT})
		})
	})
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case gatehouse.IsCode(err, gatehouse.ECONFLICT) && gatehouse.ErrorField(err) == "email":
		default:
			t.Errorf("writer %d: %v (code %s), want success or ECONFLICT on email", i, err, gatehouse.ErrorCode(err))
		}
	}
	if ok != 1 {
		t.Errorf("%d writers succeeded, want exactly 1", ok)
	}
	view(t, s, func(tx gatehouse.Tx) error {
		n, err := tx.CountUsers(ctx, te.ID, gatehouse.UserFilter{})
		if err != nil || n != 1 {
			t.Errorf("CountUsers = %d, %v; want 1", n, err)
		}
		return nil
	})
}

// A replayed callback racing the original on another replica: exactly one wins.
func testConcurrentUseOnce(t *testing.T, s gatehouse.Store) {
	const n = 20
	expires := time.Now().Add(time.Hour)
	errs := parallel(n, func(int) error {
		return s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, "assertion-1", expires) })
	})
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case gatehouse.IsCode(err, gatehouse.ECONFLICT):
		default:
			t.Errorf("user %d: %v, want success or ECONFLICT", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d uses succeeded, want exactly 1", ok)
	}
}
