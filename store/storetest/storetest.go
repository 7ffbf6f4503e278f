// Package storetest is the conformance suite every gatehouse.Store passes:
// CRUD of every object, case-insensitive uniqueness, optimistic
// concurrency, pagination, concurrent writers, rollback, tombstones, the
// replay cache and two-tenant isolation. A backend runs it with
//
//	storetest.Run(t, func(t *testing.T) gatehouse.Store { ... a fresh, empty store ... })
//
// It checks the contract of store.go through the interface only.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Run runs every conformance test; open returns a fresh, empty store for
// the test it is given (and closes it when that test ends).
func Run(t *testing.T, open func(t *testing.T) gatehouse.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s gatehouse.Store)
	}{
		{"Tenants", testTenants},
		{"TenantUniqueness", testTenantUniqueness},
		{"Users", testUsers},
		{"UserUniqueness", testUserUniqueness},
		{"UserFilters", testUserFilters},
		{"OptimisticConcurrency", testOptimisticConcurrency},
		{"Tombstones", testTombstones},
		{"GroupsAndMemberships", testGroupsAndMemberships},
		{"Identities", testIdentities},
		{"Connections", testConnections},
		{"DeleteConnection", testDeleteConnection},
		{"Apps", testApps},
		{"Tokens", testTokens},
		{"SigningKeys", testSigningKeys},
		{"Sessions", testSessions},
		{"Audit", testAudit},
		{"Outbox", testOutbox},
		{"UseOnce", testUseOnce},
		{"Pagination", testPagination},
		{"Rollback", testRollback},
		{"ConflictKeepsTransaction", testConflictKeepsTransaction},
		{"ReadOnlyView", testReadOnlyView},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentSameEmail", testConcurrentSameEmail},
		{"ConcurrentUseOnce", testConcurrentUseOnce},
		{"TenantIsolation", testTenantIsolation},
		{"DeleteTenantCascades", testDeleteTenantCascades},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var ctx = context.Background()

// update runs fn in s.Update and fails t on error.
func update(t *testing.T, s gatehouse.Store, fn func(tx gatehouse.Tx) error) {
	t.Helper()
	if err := s.Update(ctx, fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// view runs fn in s.View and fails t on error.
func view(t *testing.T, s gatehouse.Store, fn func(tx gatehouse.Tx) error) {
	t.Helper()
	if err := s.View(ctx, fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// wantCode fails t unless err carries code (and, when field is not "",
// names field).
func wantCode(t *testing.T, what string, err error, code, field string) {
	t.Helper()
	if got := gatehouse.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
		return
	}
	if field != "" && gatehouse.ErrorField(err) != field {
		t.Errorf("%s: error field %q, want %q (%v)", what, gatehouse.ErrorField(err), field, err)
	}
}

// tryUpdate runs fn in its own transaction and returns fn's error.
func tryUpdate(s gatehouse.Store, fn func(tx gatehouse.Tx) error) error {
	return s.Update(ctx, fn)
}

func newTenant(t *testing.T, s gatehouse.Store, slug string, domains ...string) *gatehouse.Tenant {
	t.Helper()
	te := &gatehouse.Tenant{Slug: slug, Name: "Tenant " + slug, Domains: domains}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateTenant(ctx, te) })
	return te
}

func newUser(t *testing.T, s gatehouse.Store, tenantID, email string) *gatehouse.User {
	t.Helper()
	u := &gatehouse.User{TenantID: tenantID, Email: email, Username: email, DisplayName: "User " + email,
		Status: gatehouse.StatusActive, Source: gatehouse.SourceJIT}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateUser(ctx, u) })
	return u
}

func newGroup(t *testing.T, s gatehouse.Store, tenantID, name string) *gatehouse.Group {
	t.Helper()
	g := &gatehouse.Group{TenantID: tenantID, Name: name, Source: gatehouse.SourceAdmin}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateGroup(ctx, g) })
	return g
}

func newConnection(t *testing.T, s gatehouse.Store, tenantID, name string) *gatehouse.Connection {
	t.Helper()
	c := &gatehouse.Connection{TenantID: tenantID, Type: gatehouse.ConnOIDC, Name: name, Enabled: true,
		Config: []byte(`{"issuer":"https://idp.example.com"}`), Secrets: []byte{1, 2, 3}, JIT: gatehouse.DefaultJITPolicy()}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateConnection(ctx, c) })
	return c
}

func link(t *testing.T, s gatehouse.Store, u *gatehouse.User, c *gatehouse.Connection, subject string) *gatehouse.FederatedIdentity {
	t.Helper()
	fi := &gatehouse.FederatedIdentity{TenantID: u.TenantID, ConnectionID: c.ID, Subject: subject, UserID: u.ID}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateIdentity(ctx, fi) })
	return fi
}

func newSession(t *testing.T, s gatehouse.Store, u *gatehouse.User, connectionID string) *gatehouse.Session {
	t.Helper()
	now := time.Now()
	se := &gatehouse.Session{ID: gatehouse.NewID("ses"), TenantID: u.TenantID, UserID: u.ID, ConnectionID: connectionID,
		AuthTime: now, IdleExpiry: now.Add(time.Hour), ExpiresAt: now.Add(8 * time.Hour)}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateSession(ctx, se) })
	return se
}

// diff compares what was written with what was read back. Times are
// compared to the microsecond (what both engines keep); empty and nil
// slices and maps are equal.
func diff(want, got any) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(time.Microsecond))
}

func check(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// ids returns the IDs of a list, for order checks.
func ids[T any](list []T, id func(T) string) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = id(v)
	}
	return out
}

func userID(u *gatehouse.User) string { return u.ID }

// errStop is returned by fn to force a rollback.
var errStop = errors.New("stop")

func fmtN(prefix string, i int) string { return fmt.Sprintf("%s%03d", prefix, i) }
