package web

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// singleUse collects the one-time keys of one login — its flow id, and the
// keys the connector records through connector.Env.Replay (a SAML
// assertion's id) — so they are written in the transaction that commits
// the login (user, link, audit, session) instead of one transaction each
// before it: one commit per login.
//
// A replay of the login therefore still never produces a second session or
// user: its transaction finds a key used, and everything it would have
// written rolls back with it (a replay that runs concurrently with the
// original serializes on the key, or on the user it creates, and then
// finds the key). The difference to recording the keys first is only
// when the refusal happens: a replayed callback now reaches the connector
// (an OIDC code exchange the IdP refuses, codes being single-use, RFC 6749
// §4.1.2) before the commit refuses it. A login that provisioning refuses
// commits its keys with the refusal's audit event; every other login that
// ends without that commit — the connector refused it, or it failed —
// records its keys in a transaction of its own (spend), so a refused
// response cannot be tried again either.
type singleUse struct {
	mu   sync.Mutex
	keys []onceKey
}

type onceKey struct {
	key     string
	expires time.Time
}

func (o *singleUse) add(key string, expires time.Time) {
	o.mu.Lock()
	o.keys = append(o.keys, onceKey{key, expires})
	o.mu.Unlock()
}

func (o *singleUse) list() []onceKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]onceKey(nil), o.keys...)
}

// write records every key in tx; a key used before is a replay.
func (o *singleUse) write(ctx context.Context, tx gatehouse.Tx) error {
	return writeKeys(ctx, tx, o.list())
}

func writeKeys(ctx context.Context, tx gatehouse.Tx, keys []onceKey) error {
	for _, k := range keys {
		if err := tx.UseOnce(ctx, k.key, k.expires); err != nil {
			if gatehouse.IsCode(err, gatehouse.ECONFLICT) {
				return errReplayed(k.key, err)
			}
			return err
		}
	}
	return nil
}

// currentUseOncer is the store's optional fusion of the two checks that
// open a login's transaction (sqlstore has it): ConnectionVersion's and
// UseOnce's, in one statement.
type currentUseOncer interface {
	UseOnceIfCurrent(ctx context.Context, key string, expires time.Time, tenantID, connectionID string, connUpdated, tenantUpdated time.Time) (bool, error)
}

// guardLogin runs first in a login's transaction: connection c of tenant
// t is still what the login used (current), then the login's one-time
// keys are recorded (write), a key used before being a replay. With the
// store's fusion the first key and the check are one statement; when it
// writes nothing, current tells a changed connection from a replay, so
// the login fails as it would have without it.
func guardLogin(ctx context.Context, tx gatehouse.Tx, t *gatehouse.Tenant, c *gatehouse.Connection, o *singleUse) error {
	keys := o.list()
	f, ok := tx.(currentUseOncer)
	if !ok || len(keys) == 0 {
		if err := current(ctx, tx, t, c, false); err != nil {
			return err
		}
		return writeKeys(ctx, tx, keys)
	}
	used, err := f.UseOnceIfCurrent(ctx, keys[0].key, keys[0].expires, t.ID, c.ID, c.UpdatedAt, t.UpdatedAt)
	if err != nil {
		return err
	}
	if !used {
		if err := current(ctx, tx, t, c, false); err != nil {
			return err
		}
		return errReplayed(keys[0].key, &gatehouse.Error{Code: gatehouse.ECONFLICT, Field: "key", Message: "This request was already used."})
	}
	return writeKeys(ctx, tx, keys[1:])
}

// spend records the keys of a login that ends without its commit (a
// refusal, a failure), so its response cannot be tried again; a key used
// already is fine here. o may be nil.
func (o *singleUse) spend(ctx context.Context, tx gatehouse.Tx) error {
	if o == nil {
		return nil
	}
	for _, k := range o.list() {
		if err := tx.UseOnce(ctx, k.key, k.expires); err != nil && !gatehouse.IsCode(err, gatehouse.ECONFLICT) {
			return err
		}
	}
	return nil
}

// errKeyUsed is the cause of every replay refusal (errors.Is).
var errKeyUsed = errors.New("one-time key already used")

// errReplayed is the refusal of a login whose one-time key was used. Its
// code is not ECONFLICT, which provisioning would retry. The reason names
// the key's kind as its prefix does, as the connector itself reported it
// when it wrote its keys at once: "flow_replayed" for the login's flow,
// "saml_replayed" for a SAML assertion id ("saml:...").
func errReplayed(key string, cause error) error {
	reason := reasonReplayed
	if i := strings.IndexByte(key, ':'); i > 0 {
		reason = key[:i] + "_replayed"
	}
	return &gatehouse.Error{Code: gatehouse.EINVALID, Reason: reason, Err: fmt.Errorf("%w: %s: %w", errKeyUsed, key, cause),
		Message: "This sign-in response was already used. Please start again."}
}

type singleUseKey struct{}

func withSingleUse(ctx context.Context, o *singleUse) context.Context {
	return context.WithValue(ctx, singleUseKey{}, o)
}

// deferredReplay is the connectors' replay cache: inside a login (a
// context from withSingleUse) a key joins the login's own transaction;
// elsewhere it is written at once through the store's UseOnce.
type deferredReplay struct{ now connector.ReplayCache }

func (d deferredReplay) UseOnce(ctx context.Context, key string, expires time.Time) error {
	if o, ok := ctx.Value(singleUseKey{}).(*singleUse); ok {
		o.add(key, expires)
		return nil
	}
	return d.now.UseOnce(ctx, key, expires)
}
