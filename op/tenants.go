package op

import (
	"context"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// tenantTTL bounds how long a replica serves a tenant it read without
// reading it again (the bound of package web's catalog).
const tenantTTL = time.Second

// tenantCache keeps, per replica, the tenants of the provider's requests
// by slug (a genCache): every request resolves its tenant from the path,
// and an app's sign-in makes three or four requests (authorize, resume,
// token), so the read was a tenth of the provider's CPU in a brokered
// sign-in.
//
// What a stale entry can and cannot do:
//   - An entry is dropped as soon as this process writes any tenant,
//     connection or app (the store's generation, sqlstore.CatalogGeneration),
//     and is read again after tenantTTL at the latest: a rename or deletion
//     on another replica is seen within tenantTTL.
//   - Within that bound the old slug may still answer as the issuer, and a
//     deleted tenant's id may still be used; but every code and token, and
//     every app outside the authorize endpoint (apps.go), is read in the
//     request's own transaction, by tenant id, and a deleted tenant's rows
//     are gone with it, so nothing of it keeps working.
type tenantCache struct {
	*genCache[string, *gatehouse.Tenant] // FoldKey(slug) → tenant
	store                                gatehouse.Store
}

// tenantRefLookup is the store's fast path for the tenant of a request
// (sqlstore.Store.LookupTenantRef): one statement, no transaction, no
// domains (the provider never reads them).
type tenantRefLookup interface {
	LookupTenantRef(ctx context.Context, slug string) (*gatehouse.Tenant, error)
}

func newTenantCache(st gatehouse.Store, clock gatehouse.Clock) *tenantCache {
	return &tenantCache{genCache: newGenCache[string, *gatehouse.Tenant](st, clock, tenantTTL, maxCachedTenants), store: st}
}

// maxCachedTenants bounds the cache (genCache.max).
const maxCachedTenants = 10000

// bySlug returns the tenant with slug (ENOTFOUND when none).
func (c *tenantCache) bySlug(ctx context.Context, slug string) (*gatehouse.Tenant, error) {
	t, _, err := c.get(ctx, gatehouse.FoldKey(slug), func(ctx context.Context) (*gatehouse.Tenant, error) {
		return c.read(ctx, slug)
	})
	return t, err
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
