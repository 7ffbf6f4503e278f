package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

// Cache lifetimes.
const (
	// DiscoveryTTL is how long a discovery document is used before it is
	// fetched again.
	DiscoveryTTL = time.Hour
	// discoveryStale is how long a cached document keeps serving when the
	// issuer cannot be reached: an IdP blip must not stop every login.
	discoveryStale = 24 * time.Hour
	// KeysTTL is how long a key set is trusted before it is fetched again
	// (so a key the IdP withdrew stops verifying within the hour).
	KeysTTL = time.Hour
	// discoveryRetry is how long a failed fetch is remembered: meanwhile
	// logins fail at once instead of each waiting for the issuer's timeout
	// in turn.
	discoveryRetry = 5 * time.Second
	// KeysMinInterval is the least time between two fetches of one key
	// set: an unknown kid triggers a fetch at once, but a flood of forged
	// tokens cannot turn Gatehouse into a load generator against the IdP.
	KeysMinInterval = time.Second
	// keysStale bounds how long cached keys keep verifying while the key
	// set cannot be fetched again.
	keysStale = 24 * time.Hour
)

// Metadata is the part of an OpenID Provider's discovery document
// (OIDC Discovery §3, RFC 8414 §2) that the relying party uses.
type Metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	UserInfoEndpoint      string   `json:"userinfo_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	AuthMethods           []string `json:"token_endpoint_auth_methods_supported"`
	IDTokenAlgs           []string `json:"id_token_signing_alg_values_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	// IssParameterSupported: the provider sends `iss` in authorization
	// responses (RFC 9207 §3), so its absence means an attack.
	IssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

// tenantTemplate is the placeholder in Entra ID's multi-tenant issuer.
const tenantTemplate = "{tenantid}"

// Template reports whether the issuer is Entra ID's multi-tenant template.
func (m *Metadata) Template() bool { return strings.Contains(m.Issuer, tenantTemplate) }

// cache holds discovery documents and key sets, shared by every connection
// of one connector.Type (keyed by issuer and by JWKS URL), so replicas of
// a connection and repeated Opens do not refetch.
type cache struct {
	mu   sync.Mutex
	docs map[string]*docEntry
	keys map[string]*keySet
}

type docEntry struct {
	mu      sync.Mutex // one fetch at a time per issuer
	md      *Metadata
	fetched time.Time
	failed  time.Time // last failed fetch
	err     error
}

func newCache() *cache {
	return &cache{docs: map[string]*docEntry{}, keys: map[string]*keySet{}}
}

// entry returns the cache entry of cfg's issuer. Entra ID connections
// have entries of their own: only they accept a templated issuer, and a
// document validated under that rule must not serve a connection without it.
func (c *cache) entry(cfg *Config) *docEntry {
	key := cfg.Issuer
	if cfg.Preset == "entra" {
		key += "\x00entra"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.docs[key]
	if e == nil {
		e = &docEntry{}
		c.docs[key] = e
	}
	return e
}

func (c *cache) keySet(uri string) *keySet {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.keys[uri]
	if k == nil {
		k = &keySet{uri: uri}
		c.keys[uri] = k
	}
	return k
}

// discover returns the issuer's metadata: from the cache while it is
// fresh, else fetched. fresh forces a fetch (Configure proves the issuer
// answers now). A failed refresh serves the previous document for a while.
func (c *cache) discover(ctx context.Context, env connector.Env, cfg *Config, fresh bool) (*Metadata, error) {
	e := c.entry(cfg)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := env.Clock.Now()
	if !fresh {
		if e.md != nil && now.Sub(e.fetched) < DiscoveryTTL {
			return e.md, nil
		}
		if e.err != nil && now.Sub(e.failed) < discoveryRetry {
			return e.stale(now, e.err)
		}
	}
	md, err := fetchDiscovery(ctx, env, cfg)
	// Time the outcome from when the fetch ended: a fetch that timed out
	// must not count as long past for the logins that queued behind it.
	now = env.Clock.Now()
	if err != nil {
		e.failed, e.err = now, err
		if fresh {
			return nil, err
		}
		if env.Logger != nil {
			env.Logger.Warn("oidc: discovery fetch failed", "issuer", cfg.Issuer, "err", err, "cached", e.md != nil)
		}
		return e.stale(now, err)
	}
	e.md, e.fetched, e.err = md, now, nil
	return md, nil
}

// stale returns the previous document while it is young enough to serve
// in place of a failed fetch, else err.
func (e *docEntry) stale(now time.Time, err error) (*Metadata, error) {
	if e.md != nil && now.Sub(e.fetched) < discoveryStale {
		return e.md, nil
	}
	return nil, err
}

func fetchDiscovery(ctx context.Context, env connector.Env, cfg *Config) (*Metadata, error) {
	// OIDC Discovery §4: the issuer plus /.well-known/openid-configuration
	// (after removing a trailing slash).
	u := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	var md Metadata
	if err := outbound.GetJSON(ctx, env.HTTPClient, u, nil, &md); err != nil {
		return nil, err
	}
	// §4.3: the issuer in the document must be identical to the one the
	// document was fetched for. The one exception is Entra ID's
	// multi-tenant endpoints, whose document names a template that each
	// token's tid completes; it must stay on the same origin.
	if md.Issuer != cfg.Issuer {
		if !(cfg.Preset == "entra" && md.Template() && sameOrigin(md.Issuer, cfg.Issuer)) {
			return nil, fmt.Errorf("the discovery document names issuer %q, not %q", md.Issuer, cfg.Issuer)
		}
	}
	for name, v := range map[string]string{"authorization_endpoint": md.AuthorizationEndpoint,
		"token_endpoint": md.TokenEndpoint, "jwks_uri": md.JWKSURI} {
		if v == "" {
			return nil, fmt.Errorf("the discovery document has no %s", name)
		}
		if err := outbound.CheckURL(v, anyURLPolicy); err != nil {
			return nil, fmt.Errorf("discovery %s: %w", name, err)
		}
	}
	if md.UserInfoEndpoint != "" {
		if err := outbound.CheckURL(md.UserInfoEndpoint, anyURLPolicy); err != nil {
			return nil, fmt.Errorf("discovery userinfo_endpoint: %w", err)
		}
	}
	return &md, nil
}

func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}

// keySet is one provider's JSON Web Key Set (RFC 7517). Unlike go-oidc's
// RemoteKeySet, which refetches on every failed verification, it refetches
// only for a key id it does not know, at most once per KeysMinInterval,
// and never because a known key failed to verify (a forged signature).
type keySet struct {
	uri     string
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
}

// get returns the keys, fetching them when none are cached, when they are
// older than KeysTTL, or when refresh asks for it (an unknown kid), in
// each case no more often than KeysMinInterval.
func (k *keySet) get(ctx context.Context, env connector.Env, refresh bool) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := env.Clock.Now()
	due := k.keys == nil || now.Sub(k.fetched) >= KeysTTL || refresh
	if !due || (!k.tried.IsZero() && now.Sub(k.tried) < KeysMinInterval) {
		if k.keys == nil || now.Sub(k.fetched) >= keysStale {
			return nil, errors.New("the key set could not be fetched (retrying shortly)")
		}
		return k.keys, nil
	}
	keys, err := fetchKeys(ctx, env, k.uri)
	// The interval counts from the end of the attempt (see discover).
	now = env.Clock.Now()
	k.tried = now
	if err != nil {
		if k.keys != nil && now.Sub(k.fetched) < keysStale {
			// Keep verifying with the keys we have; the next unknown kid
			// or the next interval retries. Not for ever: a key the IdP
			// withdrew (compromised) must stop verifying even while its
			// JWKS cannot be reached.
			if env.Logger != nil {
				env.Logger.Warn("oidc: key set refresh failed; using cached keys", "jwks_uri", k.uri, "err", err)
			}
			return k.keys, nil
		}
		return nil, err
	}
	k.keys, k.fetched = keys, now
	return keys, nil
}

func fetchKeys(ctx context.Context, env connector.Env, uri string) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := outbound.GetJSON(ctx, env.HTTPClient, uri, nil, &raw); err != nil {
		return nil, err
	}
	keys := []jose.JSONWebKey{}
	for _, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(r, &jwk); err != nil {
			continue // a key type we do not know; others may still verify
		}
		// Signature keys only, public and asymmetric: a symmetric ("oct")
		// key published in a JWKS is never a verification key.
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		switch pub := jwk.Key.(type) {
		case *rsa.PublicKey:
			// RFC 7518 §3.3, §3.5: "A key of size 2048 bits or larger
			// MUST be used" (go-jose and crypto/rsa take 1024).
			if pub.N.BitLen() >= 2048 {
				keys = append(keys, jwk)
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, jwk)
		}
	}
	return keys, nil
}

// candidates returns the keys that may have signed a token with kid and alg.
func candidates(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}
