package op

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
)

// tokenSealer writes access tokens in the format zitadel's userinfo and
// introspection endpoints decrypt (zop.NewAES256GCMCrypto): a JWE in the
// Compact Serialization (RFC 7516 section 7.1) with the content key
// wrapped by AES-256-GCM key wrap (A256GCMKW, RFC 7518 section 4.7) and the
// content encrypted with A256GCM (RFC 7518 section 5.3). zitadel built a
// go-jose encrypter per token; this one keeps the key-wrapping cipher and
// writes the header itself (TestTokenSealer: zitadel decrypts it).
type tokenSealer struct {
	kek cipher.AEAD
}

func newTokenSealer(key [32]byte) (*tokenSealer, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	kek, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &tokenSealer{kek: kek}, nil
}

// seal encrypts plaintext under a fresh content key.
func (s *tokenSealer) seal(plaintext string) (string, error) {
	enc := base64.RawURLEncoding
	// The content key, and the 96-bit IVs of the key wrap and of the
	// content (RFC 7518 sections 4.7.1.1 and 5.3); all random.
	var rnd [32 + 12 + 12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	cek, wrapIV, iv := rnd[:32], rnd[32:44], rnd[44:]
	wrapped := s.kek.Seal(nil, wrapIV, cek, nil)
	encKey, tag := wrapped[:32], wrapped[32:]
	// The protected header carries the key wrap's IV and tag (RFC 7518
	// section 4.7.1); it is the content's additional authenticated data.
	header := `{"alg":"A256GCMKW","enc":"A256GCM","iv":"` + enc.EncodeToString(wrapIV) + `","tag":"` + enc.EncodeToString(tag) + `"}`
	block, err := aes.NewCipher(cek)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	out := make([]byte, 0, 512)
	out = enc.AppendEncode(out, []byte(header))
	aad := string(out)
	sealed := gcm.Seal(nil, iv, []byte(plaintext), []byte(aad))
	ct, ctTag := sealed[:len(plaintext)], sealed[len(plaintext):]
	for _, part := range [][]byte{encKey, iv, ct, ctTag} {
		out = append(out, '.')
		out = enc.AppendEncode(out, part)
	}
	return string(out), nil
}
