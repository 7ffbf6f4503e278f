package sqlstore

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Fast paths for the login path's reads of tenants and connections (PERF,
// issue #10). A login read its tenant and connection twice (start and
// callback), each time in a View of two or three statements; package web
// now keeps them in a short-lived per-replica cache and relies on these
// two methods for freshness. Package op does the same for the tenants of
// its requests and the apps of its authorize endpoint.
//
// Apps are part of the catalog rather than counted apart: app writes are
// rare admin operations, so that they also drop the cached tenants and
// connections costs nothing worth a second counter, and one counter covers
// the cascades for free (deleting a tenant deletes its apps through the
// foreign key, and DeleteTenant already moves it).

// catalogGen counts the writes to tenants, connections and apps made
// through any Store of this process. It is per process rather than per
// Store so that two replicas sharing one database inside one test process
// also invalidate each other; in production a process has one Store.
var catalogGen atomic.Uint64

// bumpCatalog records a write to a tenant, connection or app. It is called
// in the writing transaction, before its commit (tx.bumpCatalog), and again
// once that transaction has ended, committed or not (endCatalogWrite): a
// row read between the two, the old one or, inside a shared batch, one
// never committed, was read under a generation no later request serves.
func bumpCatalog() { catalogGen.Add(1) }

// bumpCatalog is bumpCatalog, remembered so that the end of t's
// transaction moves the generation again (endCatalogWrite).
func (t *tx) bumpCatalog() {
	t.bumped = true
	bumpCatalog()
}

// endCatalogWrite moves the generation when any of txs wrote the catalog:
// called once their transaction has committed or rolled back.
func endCatalogWrite(txs ...*tx) {
	for _, t := range txs {
		if t.bumped {
			bumpCatalog()
			return
		}
	}
}

// CatalogGeneration changes whenever a tenant or connection is updated or
// deleted, or an app created, updated or deleted, through this process. A
// cache of those rows drops what it loaded under an older generation.
func (s *Store) CatalogGeneration() uint64 { return catalogGen.Load() }

// ConnectionVersion reads, in one statement of the caller's transaction,
// what a login must still find when it commits: the connection's tenant,
// whether it is enabled, and the updated_at of the connection and of its
// tenant (every change of either, domains included, sets it). ENOTFOUND
// when the connection (or its tenant) was deleted.
func (t *tx) ConnectionVersion(ctx context.Context, id string) (tenantID string, enabled bool, connUpdated, tenantUpdated time.Time, err error) {
	var cu, tu int64
	err = t.get(ctx, connectionNotFound, func(sc scanner) error { return sc.Scan(&tenantID, &enabled, &cu, &tu) },
		`SELECT c.tenant_id, c.enabled, c.updated_at, t.updated_at FROM connections c JOIN tenants t ON t.id = c.tenant_id WHERE c.id = $1`, id)
	if err != nil {
		return "", false, time.Time{}, time.Time{}, err
	}
	return tenantID, enabled, fromTS(cu), fromTS(tu), nil
}

var _ interface {
	ConnectionVersion(ctx context.Context, id string) (string, bool, time.Time, time.Time, error)
} = (*tx)(nil)

var _ interface{ CatalogGeneration() uint64 } = (*Store)(nil)

var _ gatehouse.Store = (*Store)(nil)
