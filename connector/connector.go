// Package connector defines what an SSO protocol implementation provides and
// keeps the registry of connection types. Each protocol lives in a package of
// its own (oidc, oauth2, saml, mock) and returns one gatehouse.Identity.
package connector

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// Flow is the state of one login in progress. It travels in an encrypted,
// signed, short-lived cookie (package session), never in server memory, so
// any replica can finish the login; its ID is consumed once in the store.
type Flow struct {
	ID           string    `json:"id"`
	TenantID     string    `json:"tid"`
	ConnectionID string    `json:"cid"`
	State        string    `json:"st,omitempty"`
	Nonce        string    `json:"n,omitempty"`
	PKCEVerifier string    `json:"pv,omitempty"`
	RequestID    string    `json:"rq,omitempty"` // SAML AuthnRequest ID
	LoginHint    string    `json:"lh,omitempty"`
	ReturnTo     string    `json:"rt,omitempty"` // a local path, checked when set
	Test         bool      `json:"test,omitempty"`
	CreatedAt    time.Time `json:"ca"`
	// ForceLogin asks the IdP to authenticate the user again rather than
	// answer from its own session (OIDC prompt=login, SAML ForceAuthn): an
	// app's prompt=login or max_age at Gatehouse passes through to the IdP.
	ForceLogin bool `json:"fl,omitempty"`
}

// Action tells the login handler how to send the browser to the IdP: a
// redirect, or an HTML page (a SAML HTTP-POST form that posts itself).
type Action struct {
	RedirectURL string
	HTML        []byte
}

// Connector is an opened connection, ready to run logins.
type Connector interface {
	// Begin starts a login for flow, filling the flow's protocol fields
	// (state, nonce, PKCE verifier, request id) before it is sealed.
	Begin(ctx context.Context, flow *Flow) (Action, error)
	// Finish verifies the IdP's answer on the connection's callback or ACS
	// and returns the identity. Every check fails closed. Errors are
	// *gatehouse.Error with a message safe to show; the cause is wrapped.
	Finish(ctx context.Context, flow *Flow, r *http.Request) (*gatehouse.Identity, error)
}

// FlowStateFinder is implemented by connectors whose callbacks carry the
// state in a request parameter (OIDC `state`, SAML `RelayState`), so the
// login handler can check it against the flow cookie.
type FlowStateFinder interface {
	FlowState(r *http.Request) string
}

// IdPInitiator is implemented by connectors that accept unsolicited logins
// (SAML IdP-initiated SSO) when the connection allows it.
type IdPInitiator interface {
	FinishUnsolicited(ctx context.Context, r *http.Request) (*gatehouse.Identity, error)
}

// ReplayCache records one-time values shared by all replicas (the store's
// UseOnce): ECONFLICT when key was seen before.
type ReplayCache interface {
	UseOnce(ctx context.Context, key string, expires time.Time) error
}

// Env is what a connector may use from the server.
type Env struct {
	// PublicURL is the external base URL, without a trailing slash.
	PublicURL string
	// HTTPClient makes outbound requests to tenant-supplied URLs; it
	// enforces the outbound policy (package outbound).
	HTTPClient *http.Client
	Clock      gatehouse.Clock
	Replay     ReplayCache
	Logger     *slog.Logger
	// Dev is true on a development instance (GATEHOUSE_DEV=1).
	Dev bool
}

// Type is one kind of connection.
type Type struct {
	Name string
	// DevOnly types exist only on development instances.
	DevOnly bool
	// Configure validates the protocol fields of a create or update
	// request (the JSON object of the request minus the common fields
	// name, type, enabled, jit, mapping) applied over the current config
	// and secrets (both nil on create), and returns the new ones. Secrets
	// are plain JSON here; the caller seals them. Errors are
	// gatehouse.FieldError naming the field.
	Configure func(ctx context.Context, env Env, c *gatehouse.Connection, oldSecrets json.RawMessage, in map[string]json.RawMessage) (config, secrets json.RawMessage, err error)
	// Describe returns the protocol fields shown in API responses, with
	// absolute URLs under env.PublicURL (redirect_uri, acs_url...). It
	// never includes secrets.
	Describe func(env Env, c *gatehouse.Connection) map[string]any
	// Open returns a connector for c with its secrets opened.
	Open func(ctx context.Context, env Env, c *gatehouse.Connection, secrets json.RawMessage) (Connector, error)
}

var (
	mu    sync.RWMutex
	types = map[string]*Type{}
)

// Register adds (or replaces) a connection type. Called from cmd/ wiring
// and tests (no init magic).
func Register(t *Type) {
	mu.Lock()
	defer mu.Unlock()
	types[t.Name] = t
}

// Lookup returns the type named name. DevOnly types are found only when dev.
func Lookup(name string, dev bool) (*Type, bool) {
	mu.RLock()
	defer mu.RUnlock()
	t, ok := types[name]
	if ok && t.DevOnly && !dev {
		return nil, false
	}
	return t, ok
}

// Names lists the registered type names, sorted.
func Names(dev bool) []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for n, t := range types {
		if !t.DevOnly || dev {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// ConfigureSealed runs t.Configure over c with c's sealed secrets opened
// and seals the secrets it returns to the connection id (aad), so the
// ciphertext cannot be moved to another connection. It sets c.Config and
// c.Secrets (nil when the protocol keeps none). Configure may fetch
// discovery or metadata over the network: call it outside transactions.
func ConfigureSealed(ctx context.Context, env Env, t *Type, c *gatehouse.Connection, sealer gatehouse.Sealer, in map[string]json.RawMessage) error {
	var old json.RawMessage
	if len(c.Secrets) > 0 {
		pt, err := sealer.Open(c.Secrets, []byte(c.ID))
		if err != nil {
			return err
		}
		old = pt
	}
	cfg, secrets, err := t.Configure(ctx, env, c, old, in)
	if err != nil {
		return err
	}
	c.Config = cfg
	if s := strings.TrimSpace(string(secrets)); s == "" || s == "null" {
		c.Secrets = nil
		return nil
	}
	c.Secrets, err = sealer.Seal(secrets, []byte(c.ID))
	return err
}
