// Package secret makes and checks server-generated tokens and seals secrets
// that must be read back, under a root key with a key id (envelope
// encryption), so the root key can rotate.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// NewToken returns prefix + 32 random bytes (256 bits) in URL-safe base64
// without padding. The prefix ("gh_scim_", "gh_api_") helps secret scanners
// and humans tell tokens apart.
func NewToken(prefix string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("secret: crypto/rand failed: " + err.Error())
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Digest is the stored form of a token: SHA-256. Tokens carry 256 bits of
// entropy, so a fast hash suffices (no human passwords here).
func Digest(token string) []byte {
	d := sha256.Sum256([]byte(token))
	return d[:]
}

// DigestString is Digest in URL-safe base64, for string-keyed tables.
func DigestString(token string) string {
	return base64.RawURLEncoding.EncodeToString(Digest(token))
}

// Equal compares two secrets in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// EqualString compares two secret strings in constant time.
func EqualString(a, b string) bool { return Equal([]byte(a), []byte(b)) }

// Matches reports whether token's digest equals digest, in constant time.
func Matches(token string, digest []byte) bool { return Equal(Digest(token), digest) }

// BearerToken returns the token of an Authorization header value in the
// Bearer scheme (RFC 6750 §2.1; the scheme name is case-insensitive), or ""
// when the value is absent, of another scheme, or empty.
func BearerToken(authorization string) string {
	scheme, tok, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
