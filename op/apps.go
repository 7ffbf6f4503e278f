package op

import (
	"context"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// The authorize endpoint's apps (issue #10): every authorize request read
// its app by client id (a reader-pool statement, 3 % of a brokered
// sign-in's CPU). The authorize endpoint now takes it from a genCache per
// replica, keyed by (tenant id, client id), for at most appTTL.
//
// Only the authorize endpoint (reqState.authorize) uses the cache: it
// decides from the app whether the request is valid (redirect URI, grant
// types, public client and PKCE) and where the browser goes (the login,
// or, when the browser's session answers, the app with a code). Every
// other step reads the app as stored: resume and forward-auth by client
// id, the token endpoint's grants in their own transaction (a rotated
// secret, a deleted app), and AnswerLogin, which issues the code after a
// login, in the login's transaction, where it checks the redirect URI
// again (redirectRegistered).
//
// What a stale entry can and cannot do: an app written through this
// process (created, updated, its secret rotated, deleted, or its tenant
// deleted) moves the store's generation, and the next authorize request
// reads it again; one written on another replica (or racing this
// process's own commit, the generation moves just before it) is seen within
// appTTL. Within that bound an authorize request may be validated against
// the old app and send the browser to the login; but no code is issued
// from a cached app: the login's AnswerLogin and resume read the app
// again, and where the authorize endpoint answers with a code itself
// (atAuthorize) it reads the app again first (freshClient).

// appTTL bounds how long a replica serves an app it read without reading it
// again: the bound of the tenants (tenantTTL) and of package web's catalog,
// so one number says how long another replica's change of the catalog
// takes to be seen.
const appTTL = tenantTTL

// knownAppAge bounds how old an app the two version-checked steps of a
// sign-in may start from: AnswerLogin's code (answerWithKnownApp) and the
// code grant (spendCodeOfCachedApp). Each decides from the app the replica
// read, up to knownAppAge ago whatever happened since, and writes in one
// statement that also checks the app's updated_at is still the one read:
// a changed or deleted app writes nothing, and the step reads the app as
// stored and starts again. The age costs correctness nothing; it bounds
// how long a cached app is tried before that fallback.
const knownAppAge = 10 * time.Minute

// maxCachedApps bounds the cache (genCache.max): unknown client ids are
// never cached, so only apps that exist count.
const maxCachedApps = 10000

// appKey is a cached app's key: client ids are unique per tenant only.
type appKey struct{ tenantID, clientID string }

type appCache = genCache[appKey, *gatehouse.App]

func newAppCache(st gatehouse.Store, clock gatehouse.Clock) *appCache {
	return newGenCache[appKey, *gatehouse.App](st, clock, appTTL, maxCachedApps)
}

// appLookup is the store's read of an app outside a transaction
// (sqlstore LookupAppByClientID): one statement instead of a View.
type appLookup interface {
	LookupAppByClientID(ctx context.Context, tenantID, clientID string) (*gatehouse.App, error)
}

// readApp reads the app of clientID at tenantID as stored.
func (s *storage) readApp(ctx context.Context, tenantID, clientID string) (app *gatehouse.App, err error) {
	if l, ok := s.p.store.(appLookup); ok {
		return l.LookupAppByClientID(ctx, tenantID, clientID)
	}
	err = s.p.store.View(ctx, func(tx gatehouse.Tx) error {
		app, err = tx.GetAppByClientID(ctx, tenantID, clientID)
		return err
	})
	return app, err
}

// freshClient makes sure c's app is as stored, not as cached: read again
// when it came from the cache (the request's client then uses the app
// read). ok is false when the app is gone or could not be read.
func (s *storage) freshClient(ctx context.Context, c *client) (ok bool) {
	if !c.cached {
		return true
	}
	app, err := s.readApp(ctx, c.app.TenantID, c.app.ClientID)
	if err != nil {
		return false
	}
	c.app, c.cached = app, false
	return true
}
