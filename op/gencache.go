package op

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// genCache keeps, per replica, rows the provider would otherwise read on
// every request (tenants by slug, tenants.go; apps by client id, for the
// authorize endpoint, apps.go). An entry is served while the store's
// generation (sqlstore.CatalogGeneration: every write of a tenant,
// connection or app through this process moves it) is the one it was read
// under, and for less than ttl: a write in this process is seen at the
// next request, one on another replica within ttl.
//
// Failed reads, ENOTFOUND included, are never cached: a row created on
// another replica is found at once. Without a generation from the store
// (another implementation, or a wrapper that hides it) nothing is cached.
// Entries are shared between requests: callers must not modify them.
type genCache[K comparable, V any] struct {
	gen   func() uint64
	clock gatehouse.Clock
	ttl   time.Duration
	// max bounds the entries; past it the cache starts afresh (only rows
	// that exist are cached, so only real tenants and apps count).
	max int

	mu sync.Mutex
	m  map[K]genEntry[V]
}

type genEntry[V any] struct {
	v   V
	gen uint64
	at  time.Time
	// agedOnly: read where no generation could be taken (keepAged); only
	// peekAged serves it.
	agedOnly bool
}

// generationer is the store's optional change counter (sqlstore has it).
type generationer interface{ CatalogGeneration() uint64 }

func newGenCache[K comparable, V any](st gatehouse.Store, clock gatehouse.Clock, ttl time.Duration, max int) *genCache[K, V] {
	c := &genCache[K, V]{clock: clock, ttl: ttl, max: max, m: map[K]genEntry[V]{}}
	if g, ok := gatehouse.StoreAs[generationer](st); ok {
		c.gen = g.CatalogGeneration
	}
	return c
}

// get returns the value of key: the cached one when it may still be
// served (hit), else read's, kept for the next requests when read succeeds.
func (c *genCache[K, V]) get(ctx context.Context, key K, read func(context.Context) (V, error)) (v V, hit bool, err error) {
	if c.gen == nil {
		v, err = read(ctx)
		return v, false, err
	}
	// The generation is taken before the read: a write that moves it
	// after the read started leaves an entry no later request serves.
	gen, now := c.gen(), c.clock.Now()
	if v, ok := c.servable(key, gen, now); ok {
		return v, true, nil
	}
	v, err = c.load(ctx, key, gen, now, read)
	return v, false, err
}

// refresh returns read's value of key, never the cached one, and keeps it
// for the next requests when read succeeds: a caller that must read the
// row as stored lets the requests after it find the row cached.
func (c *genCache[K, V]) refresh(ctx context.Context, key K, read func(context.Context) (V, error)) (V, error) {
	if c.gen == nil {
		return read(ctx)
	}
	return c.load(ctx, key, c.gen(), c.clock.Now(), read)
}

// load reads key and keeps it as read under gen at now.
func (c *genCache[K, V]) load(ctx context.Context, key K, gen uint64, now time.Time, read func(context.Context) (V, error)) (V, error) {
	v, err := read(ctx)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		c.m = map[K]genEntry[V]{}
	}
	c.m[key] = genEntry[V]{v: v, gen: gen, at: now}
	c.mu.Unlock()
	return v, nil
}

// keepAged keeps v, read now in a transaction (no generation was taken
// before the read), for peekAged only, unless key has an entry younger
// than maxAge that same says is v: a caller that read the row as stored
// lets the next version-checked steps start from it.
func (c *genCache[K, V]) keepAged(key K, v V, maxAge time.Duration, same func(a, b V) bool) {
	if c.gen == nil {
		return
	}
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && !now.Before(e.at) && now.Sub(e.at) < maxAge && same(e.v, v) {
		return
	}
	if !ok && len(c.m) >= c.max {
		c.m = map[K]genEntry[V]{}
	}
	c.m[key] = genEntry[V]{v: v, at: now, agedOnly: true}
}

// peek returns the value of key when the cache may still serve it, without
// reading it when not.
func (c *genCache[K, V]) peek(key K) (v V, ok bool) {
	if c.gen == nil {
		return v, false
	}
	return c.servable(key, c.gen(), c.clock.Now())
}

// peekAged returns the value of key read less than maxAge ago, whatever
// the generation: for callers that check the row is as read in the same
// statement that relies on it (apps.go, knownAppAge).
func (c *genCache[K, V]) peekAged(key K, maxAge time.Duration) (v V, ok bool) {
	return c.younger(key, c.clock.Now(), maxAge, func(genEntry[V]) bool { return true })
}

// servable returns key's entry when it was read under gen less than ttl
// before now.
func (c *genCache[K, V]) servable(key K, gen uint64, now time.Time) (v V, ok bool) {
	return c.younger(key, now, c.ttl, func(e genEntry[V]) bool { return e.gen == gen && !e.agedOnly })
}

// younger returns key's entry when it was read less than age before now
// and keep accepts it; a clock that went back counts as stale.
func (c *genCache[K, V]) younger(key K, now time.Time, age time.Duration, keep func(genEntry[V]) bool) (v V, ok bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && keep(e) && !now.Before(e.at) && now.Sub(e.at) < age {
		return e.v, true
	}
	return v, false
}

// size is the number of entries (tests).
func (c *genCache[K, V]) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
