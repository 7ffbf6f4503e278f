package op

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// jwsSigner signs JWTs with one signing key in the JWS Compact
// Serialization (RFC 7515 section 7.1). It is made once per key and kept
// (keyCache.priv): the protected header is the same for every token of the
// key, so it is encoded once. zitadel built a go-jose signer, and encoded
// its header, for every token; with ES256 that was several times the cost
// of the signature itself.
type jwsSigner struct {
	id  string
	alg string
	key crypto.Signer
	// header is base64url(the protected header) followed by ".".
	header string
}

// newJWSSigner returns the signer of key id for alg ("RS256", "ES256" or
// "EdDSA"); the key must be of the matching type (RFC 7518 sections 3.3
// and 3.4, RFC 8037 section 3.1).
func newJWSSigner(id, alg string, key crypto.Signer) (*jwsSigner, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg != "RS256" {
			return nil, fmt.Errorf("op: key %s is RSA, not %s", id, alg)
		}
	case *ecdsa.PrivateKey:
		// ES256 is ECDSA on P-256 with SHA-256 (RFC 7518 section 3.4).
		if alg != "ES256" || k.Curve.Params().BitSize != 256 {
			return nil, fmt.Errorf("op: key %s is not a P-256 key for %s", id, alg)
		}
	case ed25519.PrivateKey:
		if alg != "EdDSA" {
			return nil, fmt.Errorf("op: key %s is Ed25519, not %s", id, alg)
		}
	default:
		return nil, fmt.Errorf("op: key %s: unsupported key type %T", id, key)
	}
	// The header go-jose wrote for zitadel: alg, kid and typ "JWT".
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, id, "JWT"})
	if err != nil {
		return nil, err
	}
	return &jwsSigner{id: id, alg: alg, key: key, header: base64.RawURLEncoding.EncodeToString(h) + "."}, nil
}

// sign returns the compact JWS of payload (the JWT's claims).
func (s *jwsSigner) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	// The signing input is ASCII(BASE64URL(header) || '.' || BASE64URL(payload))
	// (RFC 7515 section 5.1); the signature is appended to the same buffer.
	n := len(s.header) + enc.EncodedLen(len(payload))
	buf := make([]byte, 0, n+1+enc.EncodedLen(512))
	buf = append(buf, s.header...)
	buf = enc.AppendEncode(buf, payload)
	input := buf[:n]
	var sig []byte
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(input)
		r, ss, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			return "", err
		}
		// R and S as 32-byte big-endian integers, concatenated (RFC 7518
		// section 3.4), not the ASN.1 form crypto/ecdsa uses elsewhere.
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		d := sha256.Sum256(input)
		var err error
		if sig, err = rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:]); err != nil {
			return "", err
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, input)
	default:
		return "", errors.New("op: unsupported signing key")
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}
