package op

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	jose "github.com/go-jose/go-jose/v4"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// Signing keys: one active key per tenant and algorithm, created on first
// use, its private half sealed with the root key (aad = key id, so a
// sealed key cannot be moved to another row). Rotation retires the active
// keys and creates new ones; a retired key stays in the JWKS for
// retiredKeyOverlap, longer than any token it signed lives.

// retiredKeyOverlap is how long a retired key stays published. ID tokens
// live IDTokenTTL (1 hour by default; keep it under this); access tokens
// are opaque and not signed.
const retiredKeyOverlap = 24 * time.Hour

// Algorithms apps may choose for their ID tokens.
var signingAlgs = []string{"RS256", "ES256", "EdDSA"}

// normalizeAlg maps an app's id_token_signing_alg to a supported one:
// RS256 (the default every RP supports) unless ES256 or EdDSA was chosen.
func normalizeAlg(a string) string {
	if slices.Contains(signingAlgs, a) {
		return a
	}
	return "RS256"
}

// ValidSigningAlg reports whether alg may be stored as an app's
// id_token_signing_alg ("" means the default, RS256).
func ValidSigningAlg(alg string) bool { return alg == "" || slices.Contains(signingAlgs, alg) }

type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
	jws *jwsSigner
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key any
}

func (k *publicKey) ID() string                         { return k.id }
func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return k.key }

type keyCache struct {
	store       gatehouse.Store
	keyring     *secret.Keyring
	clock       gatehouse.Clock
	rotateAfter time.Duration
	mu          sync.Mutex // serializes key creation in this process
	priv        sync.Map   // key id → *jwsSigner (keys never change)
	lists       sync.Map   // tenant id → *keyList: the keys signing reads
}

// keyListTTL is how long a replica signs from its copy of a tenant's key
// list instead of reading it for every token. A rotation made in this
// process is seen at once (keyGeneration); one made on another replica
// within keyListTTL: until then this replica signs with the key just
// retired, which stays in the JWKS for retiredKeyOverlap (a day), far
// longer than keyListTTL plus any ID token's lifetime, so its tokens verify.
const keyListTTL = 30 * time.Second

// keyGeneration counts key creations and rotations in this process; a
// cached key list of an older generation is read again.
var keyGeneration atomic.Uint64

type keyList struct {
	keys []*gatehouse.SigningKey
	at   time.Time
	gen  uint64
}

func newKeyCache(st gatehouse.Store, kr *secret.Keyring, clock gatehouse.Clock, rotateAfter time.Duration) *keyCache {
	return &keyCache{store: st, keyring: kr, clock: clock, rotateAfter: rotateAfter}
}

// active returns the newest unretired key of alg, or nil.
func active(keys []*gatehouse.SigningKey, alg string) *gatehouse.SigningKey {
	var best *gatehouse.SigningKey
	for _, k := range keys {
		if k.Alg == alg && k.RetiredAt == nil && (best == nil || k.CreatedAt.After(best.CreatedAt)) {
			best = k
		}
	}
	return best
}

// signingKey returns the tenant's active key for alg, creating it on first
// use and rotating it when older than the rotation age (the schedule).
func (kc *keyCache) signingKey(ctx context.Context, tenantID, alg string) (*signingKey, error) {
	alg = normalizeAlg(alg)
	var keys []*gatehouse.SigningKey
	load := func() (err error) {
		gen := keyGeneration.Load()
		if keys, err = kc.list(ctx, tenantID); err == nil {
			kc.lists.Store(tenantID, &keyList{keys: keys, at: kc.clock.Now(), gen: gen})
		}
		return err
	}
	if l, ok := kc.lists.Load(tenantID); ok && l.(*keyList).gen == keyGeneration.Load() &&
		kc.clock.Now().Sub(l.(*keyList).at) < keyListTTL {
		keys = l.(*keyList).keys
	} else if err := load(); err != nil {
		return nil, err
	}
	k := active(keys, alg)
	if k == nil || kc.clock.Now().Sub(k.CreatedAt) > kc.rotateAfter {
		kc.mu.Lock()
		err := func() error {
			defer kc.mu.Unlock()
			// Another request may have created it meanwhile.
			if err := load(); err != nil {
				return err
			}
			k = active(keys, alg)
			switch {
			case k == nil:
				err := kc.store.Update(ctx, func(tx gatehouse.Tx) error {
					var err error
					k, err = newSigningKey(ctx, tx, kc.keyring, kc.clock.Now(), tenantID, alg)
					return err
				})
				keyGeneration.Add(1)
				return err
			case kc.clock.Now().Sub(k.CreatedAt) > kc.rotateAfter:
				if err := rotate(ctx, kc.store, kc.keyring, kc.clock.Now(), tenantID, gatehouse.Actor{Type: "system", ID: "key-schedule"}); err != nil {
					return err
				}
				if err := load(); err != nil {
					return err
				}
				k = active(keys, alg)
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
		if k == nil {
			return nil, fmt.Errorf("op: no %s signing key after creating one", alg)
		}
	}
	return kc.open(k)
}

// list reads the tenant's signing keys.
func (kc *keyCache) list(ctx context.Context, tenantID string) (keys []*gatehouse.SigningKey, err error) {
	err = kc.store.View(ctx, func(tx gatehouse.Tx) error {
		keys, err = tx.ListSigningKeys(ctx, tenantID)
		return err
	})
	return keys, err
}

func (kc *keyCache) open(k *gatehouse.SigningKey) (*signingKey, error) {
	if s, ok := kc.priv.Load(k.ID); ok {
		js := s.(*jwsSigner)
		return &signingKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Alg), key: js.key, jws: js}, nil
	}
	der, err := kc.keyring.Open(k.Private, []byte(k.ID))
	if err != nil {
		return nil, fmt.Errorf("op: open signing key %s: %w", k.ID, err)
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("op: parse signing key %s: %w", k.ID, err)
	}
	s, ok := pk.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("op: signing key %s is not a signer", k.ID)
	}
	js, err := newJWSSigner(k.ID, k.Alg, s)
	if err != nil {
		return nil, err
	}
	kc.priv.Store(k.ID, js)
	return &signingKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Alg), key: s, jws: js}, nil
}

// published returns the tenant's keys for the JWKS: active ones and
// retired ones still within their overlap. A tenant with no key yet gets its
// default (RS256) one now, so a relying party that fetches the JWKS before
// the first sign-in finds the key that will sign it.
func (kc *keyCache) published(ctx context.Context, tenantID string) ([]zop.Key, error) {
	keys, err := kc.list(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if _, err := kc.signingKey(ctx, tenantID, "RS256"); err != nil {
			return nil, err
		}
		if keys, err = kc.list(ctx, tenantID); err != nil {
			return nil, err
		}
	}
	now := kc.clock.Now()
	out := []zop.Key{}
	for _, k := range keys {
		if k.RetiredAt != nil && k.NotAfter != nil && !now.Before(*k.NotAfter) {
			continue
		}
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(k.PublicJWK, &jwk); err != nil {
			return nil, fmt.Errorf("op: public key %s: %w", k.ID, err)
		}
		out = append(out, &publicKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Alg), key: jwk.Key})
	}
	return out, nil
}

// newSigningKey generates, seals and stores a key of alg for the tenant.
func newSigningKey(ctx context.Context, tx gatehouse.Tx, kr *secret.Keyring, now time.Time, tenantID, alg string) (*gatehouse.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		alg = "RS256"
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return nil, fmt.Errorf("op: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	id := gatehouse.NewID("key")
	sealed, err := kr.Seal(der, []byte(id))
	if err != nil {
		return nil, err
	}
	pub, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: id, Algorithm: alg, Use: "sig"})
	if err != nil {
		return nil, err
	}
	k := &gatehouse.SigningKey{ID: id, TenantID: tenantID, Alg: alg, Private: sealed, PublicJWK: pub, CreatedAt: now.UTC()}
	if err := tx.CreateSigningKey(ctx, k); err != nil {
		return nil, err
	}
	return k, nil
}

// RotateKeys retires the tenant's active signing keys and creates new ones
// of the same algorithms (RS256 at least). Retired keys stay in the JWKS
// for a day, so tokens they signed still verify. The API's
// POST /api/v1/tenants/{tenant}/keys/rotate calls it; the provider also
// rotates on its own when a key is older than Config.KeyRotation.
func RotateKeys(ctx context.Context, store gatehouse.Store, keyring *secret.Keyring, tenantID string) error {
	return rotate(ctx, store, keyring, gatehouse.SystemClock{}.Now(), tenantID, gatehouse.Actor{Type: "system", ID: "api"})
}

func rotate(ctx context.Context, store gatehouse.Store, kr *secret.Keyring, now time.Time, tenantID string, actor gatehouse.Actor) error {
	now = now.UTC()
	// Keys are generated outside the transaction: RSA generation takes
	// tens of milliseconds and must not hold SQLite's writer.
	var keys []*gatehouse.SigningKey
	if err := store.View(ctx, func(tx gatehouse.Tx) error {
		var err error
		keys, err = tx.ListSigningKeys(ctx, tenantID)
		return err
	}); err != nil {
		return err
	}
	algs := []string{"RS256"}
	for _, k := range keys {
		if k.RetiredAt == nil && !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	// Signing in this process uses the new keys from the next token on.
	defer keyGeneration.Add(1)
	return store.Update(ctx, func(tx gatehouse.Tx) error {
		keys, err := tx.ListSigningKeys(ctx, tenantID)
		if err != nil {
			return err
		}
		notAfter := now.Add(retiredKeyOverlap)
		var retired []string
		for _, k := range keys {
			if k.RetiredAt != nil {
				continue
			}
			at := now
			k.RetiredAt, k.NotAfter = &at, &notAfter
			if err := tx.UpdateSigningKey(ctx, k); err != nil {
				return err
			}
			retired = append(retired, k.ID)
		}
		var created []string
		for _, alg := range algs {
			k, err := newSigningKey(ctx, tx, kr, now, tenantID, alg)
			if err != nil {
				return err
			}
			created = append(created, k.ID)
		}
		return tx.AppendAudit(ctx, &gatehouse.AuditEvent{
			ID: gatehouse.NewID("aud"), TenantID: tenantID, Time: now, ActorType: actor.Type, ActorID: actor.ID,
			Action: "signing_key.rotated", TargetType: "tenant", TargetID: tenantID, RequestID: actor.RequestID,
			Details: map[string]any{"retired": retired, "created": created},
		})
	})
}
