package provision_test

import (
	"context"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// lookups counts the calls of the store's look-up fast paths.
type lookups struct{ linkOrProbe, linkedUser, probe int }

type linkLookups interface {
	LinkOrFirstLoginProbe(ctx context.Context, tenantID, connectionID, subject, email, username, group string) (*gatehouse.FederatedIdentity, *gatehouse.User, *gatehouse.FirstLoginFacts, error)
	GetLinkedUser(ctx context.Context, tenantID, connectionID, subject string) (*gatehouse.FederatedIdentity, *gatehouse.User, error)
	FirstLoginProbe(ctx context.Context, tenantID, connectionID, email, username, group string) (*gatehouse.FirstLoginFacts, error)
}

// countingStore gives the resolver transactions that have only the
// look-up fast paths, counted; with old, not LinkOrFirstLoginProbe (the
// fast path before it, still taken by a store without it).
type countingStore struct {
	*sqlstore.Store
	n   *lookups
	old bool
}

type countingTx struct {
	gatehouse.Tx
	n *lookups
}

// oldTx hides countingTx's LinkOrFirstLoginProbe.
type oldTx struct {
	gatehouse.Tx
	c countingTx
}

func (c countingTx) LinkOrFirstLoginProbe(ctx context.Context, tenantID, connectionID, subject, email, username, group string) (*gatehouse.FederatedIdentity, *gatehouse.User, *gatehouse.FirstLoginFacts, error) {
	c.n.linkOrProbe++
	return c.Tx.(linkLookups).LinkOrFirstLoginProbe(ctx, tenantID, connectionID, subject, email, username, group)
}

func (c countingTx) GetLinkedUser(ctx context.Context, tenantID, connectionID, subject string) (*gatehouse.FederatedIdentity, *gatehouse.User, error) {
	c.n.linkedUser++
	return c.Tx.(linkLookups).GetLinkedUser(ctx, tenantID, connectionID, subject)
}

func (c countingTx) FirstLoginProbe(ctx context.Context, tenantID, connectionID, email, username, group string) (*gatehouse.FirstLoginFacts, error) {
	c.n.probe++
	return c.Tx.(linkLookups).FirstLoginProbe(ctx, tenantID, connectionID, email, username, group)
}

func (o oldTx) GetLinkedUser(ctx context.Context, tenantID, connectionID, subject string) (*gatehouse.FederatedIdentity, *gatehouse.User, error) {
	return o.c.GetLinkedUser(ctx, tenantID, connectionID, subject)
}

func (o oldTx) FirstLoginProbe(ctx context.Context, tenantID, connectionID, email, username, group string) (*gatehouse.FirstLoginFacts, error) {
	return o.c.FirstLoginProbe(ctx, tenantID, connectionID, email, username, group)
}

func (c countingStore) wrap(tx gatehouse.Tx) gatehouse.Tx {
	ct := countingTx{tx, c.n}
	if c.old {
		return oldTx{tx, ct}
	}
	return ct
}

func (c countingStore) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return c.Store.Update(ctx, func(tx gatehouse.Tx) error { return fn(c.wrap(tx)) })
}

func (c countingStore) View(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return c.Store.View(ctx, func(tx gatehouse.Tx) error { return fn(c.wrap(tx)) })
}

// TestResolveFirstLook: with LinkOrFirstLoginProbe a login's first
// statement also answers a first login's probe; the link is read again
// only when a user has the email (the READ COMMITTED race of plan). A
// store with only GetLinkedUser and FirstLoginProbe still gets the same
// results from them.
func TestResolveFirstLook(t *testing.T) {
	forEngines(t, func(t *testing.T, s *sqlstore.Store) {
		for _, old := range []bool{false, true} {
			f := newFixture(t, s)
			f.conn.JIT.DefaultGroups = []string{"Everyone"}
			f.conn.JIT.LinkExistingByEmail = true
			n := &lookups{}
			f.r = provision.New(countingStore{s, n, old}, provision.Options{Clock: fixedClock{t0}})
			f.user(f.email("bo"), "bo", gatehouse.SourceAdmin, gatehouse.StatusActive)
			verified := func(id *gatehouse.Identity) *gatehouse.Identity { id.EmailVerified = bptr(true); return id }
			for _, tc := range []struct {
				name    string
				id      *gatehouse.Identity
				outcome string // "" for a refusal
				want    lookups
				wantOld lookups
			}{
				{"first login", f.identity("sub-ana", f.email("ana")), provision.OutcomeCreated,
					lookups{linkOrProbe: 1}, lookups{linkedUser: 1, probe: 1}},
				{"returning", f.identity("sub-ana", f.email("ana")), provision.OutcomeExisting,
					lookups{linkOrProbe: 1}, lookups{linkedUser: 1}},
				{"linked by email", verified(f.identity("sub-bo", f.email("bo"))), provision.OutcomeLinked,
					lookups{linkOrProbe: 1, linkedUser: 1}, lookups{linkedUser: 2, probe: 1}},
				{"missing email", f.identity("sub-cy", ""), "",
					lookups{linkOrProbe: 1}, lookups{linkedUser: 1}},
				{"invalid email", f.identity("sub-cy", "cy@"), "",
					lookups{linkOrProbe: 1}, lookups{linkedUser: 1}},
			} {
				*n = lookups{}
				res, err := f.resolve(tc.id, provision.Apply)
				if tc.outcome == "" {
					if !gatehouse.IsCode(err, gatehouse.EINVALID) {
						t.Errorf("old %v, %s: %+v %v, want a refusal", old, tc.name, res, err)
					}
				} else if err != nil || res.Outcome != tc.outcome {
					t.Errorf("old %v, %s: %+v %v, want %s", old, tc.name, res, err, tc.outcome)
				}
				want := tc.want
				if old {
					want = tc.wantOld
				}
				if *n != want {
					t.Errorf("old %v, %s: look-ups %+v, want %+v", old, tc.name, *n, want)
				}
			}
		}
	})
}
