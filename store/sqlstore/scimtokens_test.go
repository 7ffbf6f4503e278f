package sqlstore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
	"github.com/gatehouse-sso/gatehouse/store/sqlstore"
)

// stepClock is a clock the test moves.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// withReplicas runs fn on each engine with two Stores on one database, as
// two Gatehouse processes would, sharing a clock the test moves.
func withReplicas(t *testing.T, fn func(t *testing.T, a, b *sqlstore.Store, clk *stepClock)) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			url := testdb.URL(t, engine)
			clk := &stepClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
			var st [2]*sqlstore.Store
			for i := range st {
				s, err := sqlstore.Open(context.Background(), url, sqlstore.Options{Clock: clk, Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				st[i] = s
			}
			fn(t, st[0], st[1], clk)
		})
	}
}

func newSCIMToken(t *testing.T, s *sqlstore.Store, secret string) (*gatehouse.Tenant, *gatehouse.SCIMToken) {
	t.Helper()
	ctx := context.Background()
	te := &gatehouse.Tenant{Slug: "acme", Name: "Acme"}
	d := sha256.Sum256([]byte(secret))
	tok := &gatehouse.SCIMToken{Name: "okta", Hash: d[:]}
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateTenant(ctx, te); err != nil {
			return err
		}
		tok.TenantID = te.ID
		return tx.CreateSCIMToken(ctx, tok)
	})
	if err != nil {
		t.Fatal(err)
	}
	return te, tok
}

func wantToken(t *testing.T, s *sqlstore.Store, hash []byte, want *gatehouse.SCIMToken, what string) {
	t.Helper()
	got, err := s.LookupSCIMToken(context.Background(), hash)
	if want == nil {
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			t.Errorf("%s: got %+v, %v; want ENOTFOUND", what, got, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got.ID != want.ID || got.TenantID != want.TenantID || got.Name != want.Name {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
}

// TestSCIMTokenRevocationBound proves the bound scimtokens.go states: a
// token deleted through a Store fails there on the next lookup; another
// replica that cached it accepts it for less than SCIMTokenTTL after the
// delete committed, and refuses it from then on.
func TestSCIMTokenRevocationBound(t *testing.T) {
	withReplicas(t, func(t *testing.T, a, b *sqlstore.Store, clk *stepClock) {
		ctx := context.Background()
		te, tok := newSCIMToken(t, a, "gh_scim_revoke")
		wantToken(t, a, tok.Hash, tok, "replica A, first read")
		wantToken(t, b, tok.Hash, tok, "replica B, first read")
		wantToken(t, b, tok.Hash, tok, "replica B, cached")

		if err := a.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteSCIMToken(ctx, te.ID, tok.ID) }); err != nil {
			t.Fatal(err)
		}
		wantToken(t, a, tok.Hash, nil, "replica A right after its delete")
		// B read the token at the clock's current time; just under the
		// TTL later it still trusts that read...
		clk.Add(sqlstore.SCIMTokenTTL - time.Microsecond)
		wantToken(t, b, tok.Hash, tok, "replica B within the bound")
		// ...and at the TTL it reads again and refuses.
		clk.Add(time.Microsecond)
		wantToken(t, b, tok.Hash, nil, "replica B at the bound")
		wantToken(t, a, tok.Hash, nil, "replica A later")
	})
}

// TestSCIMTokenRevokeRace: a lookup that runs while the deleting
// transaction is still open sees the token (the delete is not committed),
// but must not cache it: after the commit the same Store refuses it at
// once, without waiting for the TTL.
func TestSCIMTokenRevokeRace(t *testing.T) {
	withReplicas(t, func(t *testing.T, a, _ *sqlstore.Store, _ *stepClock) {
		ctx := context.Background()
		te, tok := newSCIMToken(t, a, "gh_scim_race")
		wantToken(t, a, tok.Hash, tok, "before")
		err := a.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.DeleteSCIMToken(ctx, te.ID, tok.ID); err != nil {
				return err
			}
			// Another request, outside this transaction.
			got, err := a.LookupSCIMToken(ctx, tok.Hash)
			if err != nil || got.ID != tok.ID {
				return fmt.Errorf("during the delete: %+v, %v; want the still committed token", got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		wantToken(t, a, tok.Hash, nil, "after the commit")
	})
}

// TestSCIMTokenCacheMisses: an unknown digest is not remembered (a token
// created afterwards works at once), a clock that went backwards expires
// entries, and a cached answer equals the database's.
func TestSCIMTokenCacheMisses(t *testing.T) {
	withReplicas(t, func(t *testing.T, a, b *sqlstore.Store, clk *stepClock) {
		ctx := context.Background()
		d := sha256.Sum256([]byte("gh_scim_later"))
		wantToken(t, a, d[:], nil, "not created yet")
		_, tok := newSCIMToken(t, b, "gh_scim_later")
		wantToken(t, a, d[:], tok, "created on the other replica")

		var want *gatehouse.SCIMToken
		if err := a.View(ctx, func(tx gatehouse.Tx) (err error) { want, err = tx.GetSCIMTokenByHash(ctx, d[:]); return err }); err != nil {
			t.Fatal(err)
		}
		got, err := a.LookupSCIMToken(ctx, d[:])
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("cached %+v, %v; database %+v", got, err, want)
		}

		// Deleted behind A's back (as DeleteTenant's cascade does), then
		// the clock steps back: the entry is not trusted.
		if _, err := b.DB().ExecContext(ctx, `DELETE FROM scim_tokens WHERE id = $1`, tok.ID); err != nil {
			t.Fatal(err)
		}
		clk.Add(-time.Hour)
		wantToken(t, a, d[:], nil, "after the clock went back")
	})
}
