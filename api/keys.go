package api

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
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-sso/gatehouse"
)

// keyOverlap is how long a retired signing key stays published at least, so
// tokens it signed still verify; longer when an app's access tokens live
// longer.
const keyOverlap = 24 * time.Hour

type keyJSON struct {
	ID        string          `json:"id"`
	Alg       string          `json:"alg"`
	PublicJWK json.RawMessage `json:"public_jwk"`
	CreatedAt time.Time       `json:"created_at"`
	RetiredAt *time.Time      `json:"retired_at"`
	NotAfter  *time.Time      `json:"not_after"`
}

func keyOut(k *gatehouse.SigningKey) keyJSON {
	return keyJSON{ID: k.ID, Alg: k.Alg, PublicJWK: k.PublicJWK, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt, NotAfter: k.NotAfter}
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	var ks []*gatehouse.SigningKey
	err := s.store.View(r.Context(), func(tx gatehouse.Tx) error {
		var err error
		ks, err = tx.ListSigningKeys(r.Context(), c.tenant.ID)
		return err
	})
	if err != nil {
		return err
	}
	writeList(w, ks, keyOut)
	return nil
}

type rotateInput struct {
	Alg string `json:"alg"`
}

// rotateKeys makes a new signing key for the tenant and retires the current
// ones with overlap. The body is optional: {"alg":"RS256|ES256|EdDSA"}.
func (s *server) rotateKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	in := rotateInput{Alg: "RS256"}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, "", &in); err != nil {
			return err
		}
	}
	if !slices.Contains(signingAlgs, in.Alg) {
		return gatehouse.FieldError("alg", "alg must be one of %s.", strings.Join(signingAlgs, ", "))
	}
	var k *gatehouse.SigningKey
	if s.cfg.KeyRotator != nil {
		k, err = s.cfg.KeyRotator.Rotate(r.Context(), c.tenant.ID, in.Alg, c.actor(r))
	} else {
		k, err = s.rotate(r.Context(), c.tenant.ID, in.Alg, c.actor(r))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, keyOut(k))
	return nil
}

// rotate is the built-in rotation: the private key is PKCS #8 DER sealed
// with the keyring (aad = key id); the public key is a JWK (RFC 7517) with
// kid = key id and use "sig".
func (s *server) rotate(ctx context.Context, tenantID, alg string, a gatehouse.Actor) (*gatehouse.SigningKey, error) {
	priv, pub, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	k := &gatehouse.SigningKey{ID: gatehouse.NewID("key"), TenantID: tenantID, Alg: alg, CreatedAt: now}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if k.Private, err = s.cfg.Keyring.Seal(der, []byte(k.ID)); err != nil {
		return nil, err
	}
	if k.PublicJWK, err = (jose.JSONWebKey{Key: pub, KeyID: k.ID, Algorithm: alg, Use: "sig"}).MarshalJSON(); err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(tx gatehouse.Tx) error {
		overlap := keyOverlap
		apps, err := tx.ListApps(ctx, tenantID)
		if err != nil {
			return err
		}
		for _, app := range apps {
			overlap = max(overlap, time.Duration(app.AccessTokenTTL)*time.Second)
		}
		keys, err := tx.ListSigningKeys(ctx, tenantID)
		if err != nil {
			return err
		}
		var retired []string
		for _, old := range keys {
			if old.RetiredAt != nil {
				continue
			}
			until := now.Add(overlap)
			old.RetiredAt, old.NotAfter = &now, &until
			if err := tx.UpdateSigningKey(ctx, old); err != nil {
				return err
			}
			retired = append(retired, old.ID)
		}
		if err := tx.CreateSigningKey(ctx, k); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenantID, a, "signing_key.rotated", "signing_key", k.ID, map[string]any{"alg": alg, "retired": retired})
	})
	return k, err
}

func generateKey(alg string) (crypto.Signer, crypto.PublicKey, error) {
	switch alg {
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		return k, k.Public(), nil
	case "EdDSA":
		pub, k, err := ed25519.GenerateKey(rand.Reader)
		return k, pub, err
	default:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		return k, k.Public(), nil
	}
}
