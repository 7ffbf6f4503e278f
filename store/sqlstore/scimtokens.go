package sqlstore

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// SCIM token cache (PERF).
//
// SCIM authenticates every request by the digest of its bearer token. Read
// from the database each time, that lookup was 8 % of Gatehouse's CPU per
// SCIM create and per userName filter (profiles of gatehouse-bench
// scim-create and scim-filter), for a row that changes once a minute at
// most (last_used_at) and is otherwise only ever deleted. So each Store
// keeps the tokens it read, and trusts an entry for scimTokenTTL.
//
// How long a revoked token can keep working (tested in scimtokens_test.go):
//
//   - On the replica that deletes it (DeleteSCIMToken through this Store):
//     not at all once the deleting transaction has committed. The delete
//     drops the cached entry before its statement runs, and for
//     revokeHold afterwards no read of that token may be cached (a read
//     racing the uncommitted delete still sees the row), so every
//     lookup goes to the database until it sees the commit.
//   - On every other replica, and for tokens removed with their tenant
//     (DeleteTenant cascades in SQL, past this cache): at most
//     scimTokenTTL after the deleting transaction commits, because an entry
//     is trusted for scimTokenTTL from the moment its read began.
//
// Only tokens that exist are cached: an unknown digest is read from the
// database every time, so guessing fills nothing, and the cache holds at
// most as many entries as there are live tokens (bounded anyway by
// maxCachedTokens). The map is keyed by the SHA-256 digest, as the
// database index is, never by the token.

// scimTokenTTL bounds how long a token read from the database is used
// without reading it again: the revocation delay on other replicas.
const scimTokenTTL = time.Second

// revokeHold is how long after a local DeleteSCIMToken reads of that token
// are not cached; it covers the deleting transaction until it commits.
const revokeHold = time.Minute

// maxCachedTokens bounds the cache; past it, expired entries are swept and,
// if that is not enough, everything is dropped.
const maxCachedTokens = 4096

type scimTokenCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedSCIMToken
	revoked map[string]time.Time // token id → no caching before this time
}

type cachedSCIMToken struct {
	tok    gatehouse.SCIMToken
	readAt time.Time // when the read that produced it began
}

// fresh reports whether an entry read at readAt may still be used at now.
// A clock that went backwards counts as expired.
func fresh(readAt, now time.Time) bool {
	return !now.Before(readAt) && now.Sub(readAt) < scimTokenTTL
}

func (c *scimTokenCache) get(key [sha256.Size]byte, now time.Time) *gatehouse.SCIMToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if !fresh(e.readAt, now) {
		delete(c.entries, key)
		return nil
	}
	tok := e.tok // a copy: callers may change theirs
	return &tok
}

// put caches tok, read from the database starting at readAt, unless the
// token was deleted through this Store since shortly before.
func (c *scimTokenCache) put(key [sha256.Size]byte, tok *gatehouse.SCIMToken, readAt, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.revoked[tok.ID]; ok && now.Before(until) {
		return
	}
	if c.entries == nil {
		c.entries = map[[sha256.Size]byte]cachedSCIMToken{}
	}
	if len(c.entries) >= maxCachedTokens {
		for k, e := range c.entries {
			if !fresh(e.readAt, now) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCachedTokens {
			clear(c.entries)
		}
	}
	c.entries[key] = cachedSCIMToken{tok: *tok, readAt: readAt}
}

// revoke drops token id from the cache and keeps it out for revokeHold.
func (c *scimTokenCache) revoke(id string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.tok.ID == id {
			delete(c.entries, k)
		}
	}
	if c.revoked == nil {
		c.revoked = map[string]time.Time{}
	}
	for k, until := range c.revoked {
		if !now.Before(until) {
			delete(c.revoked, k)
		}
	}
	c.revoked[id] = now.Add(revokeHold)
}

// touched records a new last_used_at in the cached copy, so that SCIM does
// not write it again on the next request (it writes once a minute).
func (c *scimTokenCache) touched(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.tok.ID == id {
			e.tok.LastUsedAt = &at
			c.entries[k] = e
		}
	}
}

// LookupSCIMToken is GetSCIMTokenByHash for SCIM's per-request
// authentication: from the cache above when fresh, else as one statement on
// the reader pool, outside a transaction (on SQLite a View's BEGIN/COMMIT
// cost as much as the query; a single SELECT reads one consistent snapshot
// on both engines).
func (s *Store) LookupSCIMToken(ctx context.Context, hash []byte) (*gatehouse.SCIMToken, error) {
	if len(hash) != sha256.Size {
		return s.readSCIMToken(ctx, hash)
	}
	key := [sha256.Size]byte(hash)
	readAt := s.clock.Now()
	if tok := s.scimTokens.get(key, readAt); tok != nil {
		return tok, nil
	}
	tok, err := s.readSCIMToken(ctx, hash)
	if err != nil {
		return nil, err
	}
	s.scimTokens.put(key, tok, readAt, s.clock.Now())
	return tok, nil
}

// readSCIMToken reads a token by digest from the database.
func (s *Store) readSCIMToken(ctx context.Context, hash []byte) (*gatehouse.SCIMToken, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+scimTokenColumns+` FROM scim_tokens WHERE hash = $1`, hash)
	if err != nil {
		return nil, s.d.mapErr(err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, s.d.mapErr(err)
		}
		return nil, gatehouse.Errorf(gatehouse.ENOTFOUND, "%s", tokenNotFound)
	}
	tok, err := scanSCIMToken(rows)
	if err != nil {
		return nil, s.d.mapErr(err)
	}
	return tok, s.d.mapErr(rows.Close())
}
