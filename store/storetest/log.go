package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

func testAudit(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	other := newTenant(t, s, "globex")
	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond).UTC()
	var events []*gatehouse.AuditEvent
	update(t, s, func(tx gatehouse.Tx) error {
		for i, action := range []string{"user.created", "user.updated", "login.succeeded", "user.deleted", "userx.other", "login.refused"} {
			e := &gatehouse.AuditEvent{TenantID: te.ID, Time: base.Add(time.Duration(i) * time.Minute),
				ActorType: "system", ActorID: fmtN("actor", i%2), Action: action, TargetType: "user",
				TargetID: fmtN("usr_", i%3), RequestID: "req", Details: map[string]any{"i": float64(i)}}
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
			events = append(events, e)
		}
		return tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: other.ID, Action: "user.created", ActorType: "system"})
	})
	at := func(i ...int) []string {
		out := []string{}
		for _, j := range i {
			out = append(out, events[j].ID)
		}
		return out
	}
	auditID := func(e *gatehouse.AuditEvent) string { return e.ID }
	for _, tc := range []struct {
		name string
		f    gatehouse.AuditFilter
		want []string
	}{
		{"all, newest first", gatehouse.AuditFilter{}, at(5, 4, 3, 2, 1, 0)},
		{"action", gatehouse.AuditFilter{Action: "user.created"}, at(0)},
		{"action prefix", gatehouse.AuditFilter{Action: "user."}, at(3, 1, 0)},
		{"target", gatehouse.AuditFilter{TargetID: fmtN("usr_", 1)}, at(4, 1)},
		{"actor", gatehouse.AuditFilter{ActorID: fmtN("actor", 1)}, at(5, 3, 1)},
		{"since", gatehouse.AuditFilter{Since: base.Add(4 * time.Minute)}, at(5, 4)},
		{"until (exclusive)", gatehouse.AuditFilter{Until: base.Add(2 * time.Minute)}, at(1, 0)},
		{"window and prefix", gatehouse.AuditFilter{Action: "login.", Since: base.Add(time.Minute), Until: base.Add(5 * time.Minute)}, at(2)},
	} {
		view(t, s, func(tx gatehouse.Tx) error {
			list, _, err := tx.ListAudit(ctx, te.ID, tc.f, gatehouse.Page{})
			if err != nil {
				return err
			}
			check(t, "ListAudit "+tc.name, tc.want, ids(list, auditID))
			return nil
		})
	}
	view(t, s, func(tx gatehouse.Tx) error {
		list, next, err := tx.ListAudit(ctx, te.ID, gatehouse.AuditFilter{}, gatehouse.Page{Limit: 4})
		if err != nil {
			return err
		}
		check(t, "first page", at(5, 4, 3, 2), ids(list, auditID))
		check(t, "event", events[5], list[0])
		list, next, err = tx.ListAudit(ctx, te.ID, gatehouse.AuditFilter{}, gatehouse.Page{Limit: 4, Cursor: next})
		if err != nil {
			return err
		}
		check(t, "second page", at(1, 0), ids(list, auditID))
		if next != "" {
			t.Errorf("cursor %q after the last page", next)
		}
		return nil
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error { return tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: te.ID}) })
	wantCode(t, "audit event without action", err, gatehouse.EINVALID, "action")
}

func testOutbox(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	// The outbox only feeds webhooks: no row while the tenant has no
	// enabled webhook (none, or a disabled one).
	hook := &gatehouse.Webhook{TenantID: te.ID, URL: "https://hooks.example/in", Events: []string{"user.*"}, Secret: []byte("sealed")}
	for _, step := range []string{"no webhook", "disabled webhook"} {
		update(t, s, func(tx gatehouse.Tx) error {
			if step == "disabled webhook" {
				if err := tx.CreateWebhook(ctx, hook); err != nil {
					return err
				}
			}
			return tx.AppendOutbox(ctx, &gatehouse.OutboxEvent{TenantID: te.ID, Type: "user.created"})
		})
		view(t, s, func(tx gatehouse.Tx) error {
			if list, err := tx.ListPendingOutbox(ctx, 10); err != nil || len(list) != 0 {
				t.Errorf("%s: ListPendingOutbox = %d events, %v; want none", step, len(list), err)
			}
			return nil
		})
	}
	hook.Enabled = true
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateWebhook(ctx, hook) })
	var evs []*gatehouse.OutboxEvent
	update(t, s, func(tx gatehouse.Tx) error {
		for i := 0; i < 3; i++ {
			e := &gatehouse.OutboxEvent{TenantID: te.ID, Type: "user.created", Payload: json.RawMessage(`{"id":"usr_` + fmtN("", i) + `"}`)}
			if err := tx.AppendOutbox(ctx, e); err != nil {
				return err
			}
			evs = append(evs, e)
		}
		return nil
	})
	now := time.Now().Truncate(time.Microsecond).UTC()
	update(t, s, func(tx gatehouse.Tx) error { return tx.MarkOutboxDelivered(ctx, evs[0].ID, now) })
	view(t, s, func(tx gatehouse.Tx) error {
		list, err := tx.ListPendingOutbox(ctx, 10)
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0].ID != evs[1].ID || list[1].ID != evs[2].ID {
			t.Fatalf("ListPendingOutbox = %+v", list)
		}
		if !jsonEqual(list[0].Payload, evs[1].Payload) || list[0].Type != "user.created" || list[0].TenantID != te.ID {
			t.Errorf("pending event = %+v", list[0])
		}
		list, err = tx.ListPendingOutbox(ctx, 1)
		if err != nil || len(list) != 1 {
			t.Errorf("ListPendingOutbox(1) = %d events, %v", len(list), err)
		}
		return nil
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error { return tx.MarkOutboxDelivered(ctx, "obx_missing", now) })
	wantCode(t, "MarkOutboxDelivered(missing)", err, gatehouse.ENOTFOUND, "")
}

func testUseOnce(t *testing.T, s gatehouse.Store) {
	future := time.Now().Add(time.Hour)
	use := func(key string, expires time.Time) error {
		return tryUpdate(s, func(tx gatehouse.Tx) error { return tx.UseOnce(ctx, key, expires) })
	}
	if err := use("flow-1", future); err != nil {
		t.Fatalf("first use: %v", err)
	}
	wantCode(t, "replay", use("flow-1", future), gatehouse.ECONFLICT, "")
	if err := use("flow-2", future); err != nil {
		t.Errorf("another key: %v", err)
	}
	// An expired key may be used again (its entry is only a cache).
	past := time.Now().Add(-time.Second)
	if err := use("flow-3", past); err != nil {
		t.Fatalf("first use of flow-3: %v", err)
	}
	if err := use("flow-3", future); err != nil {
		t.Errorf("reuse after expiry: %v", err)
	}
	wantCode(t, "replay after renewal", use("flow-3", future), gatehouse.ECONFLICT, "")
	// Many keys: the opportunistic purge of expired keys runs on the way.
	update(t, s, func(tx gatehouse.Tx) error {
		for i := 0; i < 600; i++ {
			if err := tx.UseOnce(ctx, fmtN("old-", i), past); err != nil {
				return err
			}
		}
		return nil
	})
	wantCode(t, "replay after purges", use("flow-1", future), gatehouse.ECONFLICT, "")
	// A rolled-back use does not count.
	_ = tryUpdate(s, func(tx gatehouse.Tx) error {
		if err := tx.UseOnce(ctx, "flow-4", future); err != nil {
			return err
		}
		return errStop
	})
	if err := use("flow-4", future); err != nil {
		t.Errorf("use after a rolled-back use: %v", err)
	}
}

func testPagination(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	const n = 250
	var want []string
	update(t, s, func(tx gatehouse.Tx) error {
		for i := 0; i < n; i++ {
			u := &gatehouse.User{TenantID: te.ID, Email: fmtN("user", i) + "@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceImport}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			want = append(want, u.ID)
			if err := tx.CreateGroup(ctx, &gatehouse.Group{TenantID: te.ID, Name: fmtN("group", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	// Walk the users 100 at a time.
	var got []string
	cursor, pages := "", 0
	for {
		var list []*gatehouse.User
		var next string
		view(t, s, func(tx gatehouse.Tx) (err error) {
			list, next, err = tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{}, gatehouse.Page{Limit: 100, Cursor: cursor})
			return err
		})
		pages++
		got = append(got, ids(list, userID)...)
		if next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
	if pages != 3 {
		t.Errorf("%d pages of 100 for %d users, want 3", pages, n)
	}
	check(t, "all users in creation order, once each", want, got)

	view(t, s, func(tx gatehouse.Tx) error {
		// Limits are clamped: default 100, at most 1000, at least 1.
		list, _, err := tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{}, gatehouse.Page{})
		if err != nil || len(list) != 100 {
			t.Errorf("default limit: %d users, %v", len(list), err)
		}
		list, next, err := tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{}, gatehouse.Page{Limit: 5000})
		if err != nil || len(list) != n || next != "" {
			t.Errorf("limit 5000: %d users, cursor %q, %v", len(list), next, err)
		}
		list, next, err = tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{}, gatehouse.Page{Limit: -3})
		if err != nil || len(list) != 100 || next == "" {
			t.Errorf("negative limit: %d users, %v", len(list), err)
		}
		_, _, err = tx.ListUsers(ctx, te.ID, gatehouse.UserFilter{}, gatehouse.Page{Cursor: "not a cursor!"})
		wantCode(t, "bad cursor", err, gatehouse.EINVALID, "cursor")

		// Groups page the same way.
		groups, next, err := tx.ListGroups(ctx, te.ID, gatehouse.Page{Limit: 200})
		if err != nil || len(groups) != 200 || next == "" {
			t.Fatalf("ListGroups page 1: %d, %q, %v", len(groups), next, err)
		}
		rest, next, err := tx.ListGroups(ctx, te.ID, gatehouse.Page{Limit: 200, Cursor: next})
		if err != nil || len(rest) != 50 || next != "" || rest[0].ID <= groups[199].ID {
			t.Errorf("ListGroups page 2: %d, %q, %v", len(rest), next, err)
		}
		return nil
	})
	// Tenants too.
	for i := 0; i < 3; i++ {
		newTenant(t, s, fmtN("t", i))
	}
	view(t, s, func(tx gatehouse.Tx) error {
		first, next, err := tx.ListTenants(ctx, gatehouse.Page{Limit: 2})
		if err != nil || len(first) != 2 || next == "" {
			t.Fatalf("ListTenants page 1: %d, %q, %v", len(first), next, err)
		}
		rest, next, err := tx.ListTenants(ctx, gatehouse.Page{Limit: 2, Cursor: next})
		if err != nil || len(rest) != 2 || next != "" || len(rest[0].Domains) != 0 {
			t.Errorf("ListTenants page 2: %d, %q, %v", len(rest), next, err)
		}
		return nil
	})
}

func testRollback(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		u := &gatehouse.User{TenantID: te.ID, Email: "ana@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &gatehouse.AuditEvent{TenantID: te.ID, Action: "user.jit_created", TargetID: u.ID}); err != nil {
			return err
		}
		return errStop
	})
	if err != errStop {
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetUserByEmail(ctx, te.ID, "ana@acme.com")
		wantCode(t, "user of a rolled-back transaction", err, gatehouse.ENOTFOUND, "")
		list, _, err := tx.ListAudit(ctx, te.ID, gatehouse.AuditFilter{}, gatehouse.Page{})
		if err != nil || len(list) != 0 {
			t.Errorf("audit of a rolled-back transaction: %d events, %v", len(list), err)
		}
		return nil
	})
	// A panicking fn rolls back too, and the store stays usable.
	func() {
		defer func() { _ = recover() }()
		_ = s.Update(ctx, func(tx gatehouse.Tx) error {
			_ = tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Email: "bo@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT})
			panic("boom")
		})
	}()
	newUser(t, s, te.ID, "cy@acme.com")
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetUserByEmail(ctx, te.ID, "bo@acme.com")
		wantCode(t, "user of a panicked transaction", err, gatehouse.ENOTFOUND, "")
		return nil
	})
}

// A caller may catch ECONFLICT and go on in the same transaction (JIT
// reads the winner of a race; an admin import skips duplicates).
func testConflictKeepsTransaction(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme", "acme.com")
	newUser(t, s, te.ID, "ana@acme.com")
	// fn may run more than once (PostgreSQL runs it again with savepoints
	// after a failed write), so the errors of its last run are checked.
	type caughtErr struct {
		what, field string
		err         error
	}
	var caught []caughtErr
	update(t, s, func(tx gatehouse.Tx) error {
		caught = nil
		catch := func(what, field string, err error) { caught = append(caught, caughtErr{what, field, err}) }
		catch("duplicate in the transaction", "email", tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Email: "ANA@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}))
		// Single-statement writes (no savepoint on SQLite) leave the
		// transaction usable too: a taken email on update, a linked
		// identity, a duplicate group name.
		ana, err := tx.GetUserByEmail(ctx, te.ID, "ana@acme.com")
		if err != nil {
			return err
		}
		bea := &gatehouse.User{TenantID: te.ID, Email: "bea@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
		if err := tx.CreateUser(ctx, bea); err != nil {
			return err
		}
		bea.Email = "ana@acme.com"
		catch("update onto a taken email", "email", tx.UpdateUser(ctx, bea))
		c := &gatehouse.Connection{TenantID: te.ID, Type: gatehouse.ConnOIDC, Name: "okta", Enabled: true, JIT: gatehouse.DefaultJITPolicy()}
		if err := tx.CreateConnection(ctx, c); err != nil {
			return err
		}
		fi := &gatehouse.FederatedIdentity{TenantID: te.ID, ConnectionID: c.ID, Subject: "s1", UserID: ana.ID}
		if err := tx.CreateIdentity(ctx, fi); err != nil {
			return err
		}
		dup := *fi
		dup.UserID = bea.ID
		catch("identity linked twice", "", tx.CreateIdentity(ctx, &dup))
		if err := tx.CreateGroup(ctx, &gatehouse.Group{TenantID: te.ID, Name: "Staff", Source: gatehouse.SourceAdmin}); err != nil {
			return err
		}
		catch("group name taken", "name", tx.CreateGroup(ctx, &gatehouse.Group{TenantID: te.ID, Name: "staff", Source: gatehouse.SourceAdmin}))
		// A multi-statement write that fails half-way leaves nothing.
		catch("tenant with a taken domain", "domain", tx.CreateTenant(ctx, &gatehouse.Tenant{Slug: "globex", Name: "Globex", Domains: []string{"globex.com", "acme.com"}}))
		if _, err := tx.GetUserByEmail(ctx, te.ID, "ana@acme.com"); err != nil {
			return err
		}
		return tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Email: "bo@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT})
	})
	if len(caught) != 5 {
		t.Fatalf("caught %d errors, want 5", len(caught))
	}
	for _, c := range caught {
		wantCode(t, c.what, c.err, gatehouse.ECONFLICT, c.field)
	}
	view(t, s, func(tx gatehouse.Tx) error {
		if _, err := tx.GetUserByEmail(ctx, te.ID, "bo@acme.com"); err != nil {
			t.Errorf("write after a caught conflict: %v", err)
		}
		if u, err := tx.GetUserByEmail(ctx, te.ID, "bea@acme.com"); err != nil || u.Version != 1 {
			t.Errorf("user whose update conflicted: %+v, %v; want it as created", u, err)
		}
		_, err := tx.GetTenantBySlug(ctx, "globex")
		wantCode(t, "half-written tenant", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetTenantByDomain(ctx, "globex.com")
		wantCode(t, "half-written tenant's domain", err, gatehouse.ENOTFOUND, "")
		return nil
	})
}

func testReadOnlyView(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	err := s.View(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateUser(ctx, &gatehouse.User{TenantID: te.ID, Email: "ana@acme.com", Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT})
	})
	if err == nil {
		t.Error("a write in View succeeded")
	}
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetUserByEmail(ctx, te.ID, "ana@acme.com")
		wantCode(t, "user written in View", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if e := s.Engine(); e != "sqlite" && e != "postgres" {
		t.Errorf("Engine() = %q", e)
	}
}
