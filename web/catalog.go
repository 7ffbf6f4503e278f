package web

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// catalogTTL bounds how long a replica serves a tenant or connection it
// read without reading it again.
const catalogTTL = time.Second

// catalog caches, per replica, the tenants and connections the login path
// reads on every request (a login read them twice, each time in a View of
// two or three statements: about a tenth of a login's CPU).
//
// What a stale entry can and cannot do:
//   - An entry is dropped as soon as this process writes any tenant or
//     connection (the store's generation, sqlstore.CatalogGeneration), and
//     is read again after catalogTTL at the latest: a change made on
//     another replica (or racing this replica's own commit) is seen within
//     catalogTTL.
//   - Within that bound a login may START through a connection that was
//     just disabled, changed or deleted (a redirect to the IdP), but it
//     can never FINISH with one: the transaction that writes the user and
//     the session first checks, in the same transaction, that the
//     connection still exists, is enabled, and that neither it nor its
//     tenant changed since the entry was read (current). A login in
//     flight across a change is refused and the entry dropped.
//
// Without a generation from the store (another Store implementation, or a
// wrapper that hides it) nothing is cached.
//
// Entries are shared between requests: callers must not modify them.
type catalog struct {
	store gatehouse.Store
	gen   func() uint64
	clock gatehouse.Clock
	ttl   time.Duration

	mu      sync.Mutex
	tenants map[string]tenantEntry // FoldKey(slug) → tenant
	conns   map[string]connEntry   // connection id → connection and its tenant
}

type tenantEntry struct {
	t   *gatehouse.Tenant
	gen uint64
	at  time.Time
}

type connEntry struct {
	c   *gatehouse.Connection
	t   *gatehouse.Tenant
	gen uint64
	at  time.Time
}

// generationer is the store's optional change counter (sqlstore has it).
type generationer interface{ CatalogGeneration() uint64 }

func newCatalog(st gatehouse.Store, clock gatehouse.Clock) *catalog {
	c := &catalog{store: st, clock: clock, ttl: catalogTTL,
		tenants: map[string]tenantEntry{}, conns: map[string]connEntry{}}
	if g, ok := gatehouse.StoreAs[generationer](st); ok {
		c.gen = g.CatalogGeneration
	}
	return c
}

// fresh reports whether an entry read at at under generation gen may still
// be served. A clock that went back counts as stale.
func (c *catalog) fresh(gen uint64, at time.Time, nowGen uint64, now time.Time) bool {
	return c.gen != nil && gen == nowGen && !now.Before(at) && now.Sub(at) < c.ttl
}

// tenantBySlug returns the tenant with slug (ENOTFOUND when none).
func (c *catalog) tenantBySlug(ctx context.Context, slug string) (*gatehouse.Tenant, error) {
	key := gatehouse.FoldKey(slug)
	gen, now := c.generation(), c.clock.Now()
	c.mu.Lock()
	e, ok := c.tenants[key]
	c.mu.Unlock()
	if ok && c.fresh(e.gen, e.at, gen, now) {
		return e.t, nil
	}
	var t *gatehouse.Tenant
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		t, err = tx.GetTenantBySlug(ctx, slug)
		return err
	})
	if err != nil {
		return nil, err
	}
	if c.gen != nil {
		c.mu.Lock()
		c.tenants[key] = tenantEntry{t: t, gen: gen, at: now}
		c.mu.Unlock()
	}
	return t, nil
}

// connection returns connection id and its tenant (ENOTFOUND when none).
func (c *catalog) connection(ctx context.Context, id string) (*gatehouse.Connection, *gatehouse.Tenant, error) {
	gen, now := c.generation(), c.clock.Now()
	c.mu.Lock()
	e, ok := c.conns[id]
	c.mu.Unlock()
	if ok && c.fresh(e.gen, e.at, gen, now) {
		return e.c, e.t, nil
	}
	var conn *gatehouse.Connection
	var t *gatehouse.Tenant
	err := c.store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		if conn, err = tx.GetConnectionByID(ctx, id); err != nil {
			return err
		}
		t, err = tx.GetTenant(ctx, conn.TenantID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if c.gen != nil {
		c.mu.Lock()
		c.conns[id] = connEntry{c: conn, t: t, gen: gen, at: now}
		c.mu.Unlock()
	}
	return conn, t, nil
}

// forget drops what is cached of connection id and of tenant t.
func (c *catalog) forget(id string, t *gatehouse.Tenant) {
	c.mu.Lock()
	delete(c.conns, id)
	if t != nil {
		delete(c.tenants, gatehouse.FoldKey(t.Slug))
	}
	c.mu.Unlock()
}

func (c *catalog) generation() uint64 {
	if c.gen == nil {
		return 0
	}
	return c.gen()
}

// connectionVersioner is the store's optional one-statement version read
// inside a transaction (sqlstore has it).
type connectionVersioner interface {
	ConnectionVersion(ctx context.Context, id string) (tenantID string, enabled bool, connUpdated, tenantUpdated time.Time, err error)
}

// current checks, inside the login's own write transaction, that
// connection c of tenant t as the login used them is what the database
// holds now: the connection exists, belongs to t, is enabled (unless
// allowDisabled, for a test login), and neither it nor t was changed
// since they were read. On SQLite the write transaction holds the write
// lock, so nothing can change them before the commit; on PostgreSQL this
// is the last committed state, read as late as it can be.
func current(ctx context.Context, tx gatehouse.Tx, t *gatehouse.Tenant, c *gatehouse.Connection, allowDisabled bool) error {
	var tenantID string
	var enabled bool
	var connUpdated, tenantUpdated time.Time
	var err error
	if v, ok := tx.(connectionVersioner); ok {
		tenantID, enabled, connUpdated, tenantUpdated, err = v.ConnectionVersion(ctx, c.ID)
	} else {
		var fc *gatehouse.Connection
		var ft *gatehouse.Tenant
		if fc, err = tx.GetConnectionByID(ctx, c.ID); err == nil {
			if ft, err = tx.GetTenant(ctx, fc.TenantID); err == nil {
				tenantID, enabled, connUpdated, tenantUpdated = fc.TenantID, fc.Enabled, fc.UpdatedAt, ft.UpdatedAt
			}
		}
	}
	switch {
	case gatehouse.IsCode(err, gatehouse.ENOTFOUND):
		return errConnectionChanged
	case err != nil:
		return err
	case tenantID != t.ID:
		return errConnectionChanged
	case !enabled && !allowDisabled:
		return errConnectionDisabled
	case !connUpdated.Equal(c.UpdatedAt) || !tenantUpdated.Equal(t.UpdatedAt):
		return errConnectionChanged
	}
	return nil
}

// reasonConnectionChanged: the connection or its tenant changed (or was
// deleted) while the login was under way.
const reasonConnectionChanged = "connection_changed"

// The codes are not ECONFLICT or EPRECONDITION, which provisioning
// retries: a retry would find the same change.
var (
	errConnectionChanged = &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Reason: reasonConnectionChanged,
		Message: "This sign-in method was changed while you were signing in. Please start again."}
	errConnectionDisabled = &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Reason: "connection_disabled",
		Message: "This sign-in method was turned off while you were signing in."}
)

// tenantRefIsID reports whether a /t/{tenant} reference is a tenant id
// (links built from ids), which the catalog does not cache by.
func tenantRefIsID(ref string) bool { return strings.HasPrefix(ref, "ten_") }
