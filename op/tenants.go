package op

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// tenantTTL bounds how long a replica serves a tenant it read without
// reading it again (the bound of package web's catalog).
const tenantTTL = time.Second

// tenantCache keeps, per replica, the tenants of the provider's requests
// by slug: every request resolves its tenant from the path, and an app's
// sign-in makes three or four requests (authorize, resume, token), so the
// read was a tenth of the provider's CPU in a brokered sign-in.
//
// What a stale entry can and cannot do:
//   - An entry is dropped as soon as this process writes any tenant or
//     connection (the store's generation, sqlstore.CatalogGeneration), and
//     is read again after tenantTTL at the latest: a rename or deletion on
//     another replica is seen within tenantTTL.
//   - Within that bound the old slug may still answer as the issuer, and a
//     deleted tenant's id may still be used; but every app, code and token
//     is read in the request's own transaction, by tenant id, and a deleted
//     tenant's rows are gone with it, so nothing of it keeps working.
//
// Without a generation from the store (another implementation, or a
// wrapper that hides it) nothing is cached. Entries are shared between
// requests: callers must not modify them.
type tenantCache struct {
	store gatehouse.Store
	gen   func() uint64
	clock gatehouse.Clock
	ttl   time.Duration

	mu sync.Mutex
	m  map[string]tenantEntry // FoldKey(slug) → tenant
}

type tenantEntry struct {
	t   *gatehouse.Tenant
	gen uint64
	at  time.Time
}

// generationer is the store's optional change counter (sqlstore has it).
type generationer interface{ CatalogGeneration() uint64 }

// tenantRefLookup is the store's fast path for the tenant of a request
// (sqlstore.Store.LookupTenantRef): one statement, no transaction, no
// domains (the provider never reads them).
type tenantRefLookup interface {
	LookupTenantRef(ctx context.Context, slug string) (*gatehouse.Tenant, error)
}

func newTenantCache(st gatehouse.Store, clock gatehouse.Clock) *tenantCache {
	c := &tenantCache{store: st, clock: clock, ttl: tenantTTL, m: map[string]tenantEntry{}}
	if g, ok := gatehouse.StoreAs[generationer](st); ok {
		c.gen = g.CatalogGeneration
	}
	return c
}

// maxCachedTenants bounds the cache; past it the cache starts afresh
// (requests for unknown slugs are not cached, so only real tenants count).
const maxCachedTenants = 10000

// bySlug returns the tenant with slug (ENOTFOUND when none).
func (c *tenantCache) bySlug(ctx context.Context, slug string) (*gatehouse.Tenant, error) {
	if c.gen == nil {
		return c.read(ctx, slug)
	}
	key := gatehouse.FoldKey(slug)
	gen, now := c.gen(), c.clock.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	// A clock that went back counts as stale.
	if ok && e.gen == gen && !now.Before(e.at) && now.Sub(e.at) < c.ttl {
		return e.t, nil
	}
	t, err := c.read(ctx, slug)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedTenants {
		c.m = map[string]tenantEntry{}
	}
	c.m[key] = tenantEntry{t: t, gen: gen, at: now}
	c.mu.Unlock()
	return t, nil
}

func (c *tenantCache) read(ctx context.Context, slug string) (t *gatehouse.Tenant, err error) {
	if l, ok := gatehouse.StoreAs[tenantRefLookup](c.store); ok {
		return l.LookupTenantRef(ctx, slug)
	}
	err = c.store.View(ctx, func(tx gatehouse.Tx) error {
		t, err = tx.GetTenantBySlug(ctx, slug)
		return err
	})
	return t, err
}
