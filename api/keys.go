package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/op"
)

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

// rotateKeys retires the tenant's active signing keys and makes new ones of
// the same algorithms (package op does it, so keys are made one way only);
// retired keys stay published while tokens they signed may still be
// checked. It needs no body and answers with the tenant's keys.
func (s *server) rotateKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := op.RotateKeys(r.Context(), s.store, s.cfg.Keyring, c.tenant.ID); err != nil {
		return err
	}
	return s.listKeys(w, r, c)
}
