package op

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// A validated authorize request travels, until it is answered with a code,
// sealed in the resume URL (/t/{slug}/authorize/resume?ar=...) instead of
// an op_auth_requests row: the authorize endpoint writes nothing, and the
// login that follows — on any replica, all of which derive the same key
// from the root key — finds the request in its return address. The row is
// written once, with the code (codeRow), and its id is the sealed
// request's id, so one authorize request is answered with one code at most
// however often its resume URL is replayed.
//
// The seal is AES-256-GCM (NIST SP 800-38D) under a key derived from the
// root key for this purpose alone, with the tenant's id as additional
// data: a request sealed for one tenant does not open at another, and a
// changed byte does not open at all. The expiry is inside the seal and is
// checked with the Clock.

// maxSealedRequest bounds what resume tries to open (a request is a few
// hundred bytes).
const maxSealedRequest = 4096

// maxSealedQuery bounds a sealed request in the resume URL: it travels in
// the login's return address (web.ValidReturnTo allows 2048 bytes with the
// path). A longer request (a huge state, say) is stored as a row as before.
const maxSealedQuery = 1700

// sealedRequest is the sealed form of an authorize request.
type sealedRequest struct {
	ID       string          `json:"i"`
	ClientID string          `json:"c"`
	Expires  int64           `json:"e"`           // Unix nanoseconds
	AuthTime int64           `json:"t,omitempty"` // when it sent the browser to log in
	Params   json.RawMessage `json:"p"`
}

type requestSealer struct{ aead cipher.AEAD }

func newRequestSealer(kr *secret.Keyring) (*requestSealer, error) {
	b, err := aes.NewCipher(kr.DeriveKey("op authorize request"))
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &requestSealer{aead: a}, nil
}

func sealedAAD(tenantID string) []byte { return []byte("gatehouse authorize request\x00" + tenantID) }

// seal returns ar in its sealed form.
func (s *requestSealer) seal(ar *authRequest) (string, error) {
	params := ar.row.Request
	if params == nil {
		var err error
		if params, err = json.Marshal(ar.p); err != nil {
			return "", err
		}
	}
	sr := sealedRequest{ID: ar.row.ID, ClientID: ar.row.ClientID, Expires: ar.row.ExpiresAt.UnixNano(), Params: params}
	if !ar.row.AuthTime.IsZero() {
		sr.AuthTime = ar.row.AuthTime.UnixNano()
	}
	pt, err := json.Marshal(sr)
	if err != nil {
		return "", err
	}
	n := s.aead.NonceSize()
	nonce := make([]byte, n, n+len(pt)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, pt, sealedAAD(ar.row.TenantID))), nil
}

// errSealedRequest is every refusal of a sealed request: forged, tampered
// with, of another tenant, or expired look the same to the browser.
var errSealedRequest = gatehouse.Errorf(gatehouse.ENOTFOUND, "The sign-in request has expired. Go back to the app and try again.")

// open returns the authorize request sealed in value for tenantID, or
// errSealedRequest.
func (s *requestSealer) open(tenantID, value string, now time.Time) (*authRequest, error) {
	if value == "" || len(value) > maxSealedRequest {
		return nil, errSealedRequest
	}
	box, err := base64.RawURLEncoding.DecodeString(value)
	n := s.aead.NonceSize()
	if err != nil || len(box) < n+s.aead.Overhead() {
		return nil, errSealedRequest
	}
	pt, err := s.aead.Open(nil, box[:n], box[n:], sealedAAD(tenantID))
	if err != nil {
		return nil, errSealedRequest
	}
	var sr sealedRequest
	if err := json.Unmarshal(pt, &sr); err != nil || sr.ID == "" || sr.ClientID == "" {
		return nil, errSealedRequest
	}
	row := &gatehouse.OPAuthRequest{ID: sr.ID, TenantID: tenantID, ClientID: sr.ClientID, Request: sr.Params,
		ExpiresAt: time.Unix(0, sr.Expires).UTC()}
	if !now.Before(row.ExpiresAt) {
		return nil, errSealedRequest
	}
	if sr.AuthTime != 0 {
		row.AuthTime = time.Unix(0, sr.AuthTime).UTC()
	}
	ar, err := loadAuthRequest(row)
	if err != nil {
		return nil, errSealedRequest
	}
	ar.sealed = true
	return ar, nil
}

// resumeQuery is the query that resumes ar at the resume endpoint: ar
// sealed, or, for a request that does not fit sealed in a return address
// (a huge state, say) or one stored already, its row's id; ar.sealed then
// is false and the caller stores the row.
func (p *Provider) resumeQuery(ar *authRequest) string {
	if ar.sealed {
		v, err := p.requests.seal(ar)
		if err == nil && len(v) <= maxSealedQuery {
			return "ar=" + v
		}
		if err != nil {
			p.log.Error("op: seal authorize request", "err", err)
		}
		ar.sealed = false
	}
	return url.Values{"id": {ar.row.ID}}.Encode()
}

// codeRow fills ar.row as answered for user in sess with a new code and
// returns the code; the caller writes the row (writeAnswer).
func (p *Provider) codeRow(ar *authRequest, user *gatehouse.User, sess *gatehouse.Session) string {
	code := newCode()
	ar.row.UserID, ar.row.AuthTime, ar.row.SessionID, ar.row.Done = user.ID, sess.AuthTime, publicSID(sess.ID), true
	ar.row.CodeHash, ar.row.ExpiresAt = secret.Digest(code), p.clock.Now().UTC().Add(codeTTL)
	return code
}

// answeredCreator is the store's insert of an answered request that
// reports, instead of failing, a request answered before (sqlstore
// CreateOPAuthCode): the transaction goes on either way on both engines.
type answeredCreator interface {
	CreateOPAuthCode(ctx context.Context, r *gatehouse.OPAuthRequest) (bool, error)
}

// errAnswered: the authorize request was answered with a code before.
var errAnswered = gatehouse.Errorf(gatehouse.ECONFLICT, "The sign-in request was already used. Go back to the app and sign in again.")

// writeAnswer stores the answered request ar (codeRow) in tx: for a sealed
// request its first row, for a stored one the update of its row. A request
// answered before gets no second code: errAnswered.
func writeAnswer(ctx context.Context, tx gatehouse.Tx, ar *authRequest) error {
	if !ar.sealed {
		if err := tx.CompleteOPAuthRequest(ctx, ar.row); err != nil {
			return err
		}
		err := tx.SetOPAuthCode(ctx, ar.row.TenantID, ar.row.ID, ar.row.CodeHash, ar.row.ExpiresAt)
		if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			return errAnswered
		}
		return err
	}
	if c, ok := tx.(answeredCreator); ok {
		created, err := c.CreateOPAuthCode(ctx, ar.row)
		if err == nil && !created {
			return errAnswered
		}
		return err
	}
	if _, err := tx.GetOPAuthRequest(ctx, ar.row.TenantID, ar.row.ID); err == nil {
		return errAnswered
	} else if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
		return err
	}
	return tx.CreateOPAuthRequest(ctx, ar.row)
}
