package op

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// tokenSealer writes and reads access tokens: a JWE in the Compact
// Serialization (RFC 7516 section 7.1) with the content key wrapped by
// AES-256-GCM key wrap (A256GCMKW, RFC 7518 section 4.7) and the content
// encrypted with A256GCM (RFC 7518 section 5.3), the format of zitadel's
// zop.NewAES256GCMCrypto. It is the provider's zop.Crypto (WithCrypto):
// zitadel's userinfo, introspection, revocation and client_credentials
// go through it too.
//
// The key wrap uses random 96-bit IVs, which NIST SP 800-38D section 8.3
// allows for at most 2^32 encryptions per key. So the wrapping key is
// derived per period of tokenKeyPeriod (HKDF-SHA256 of the token key, the
// period's index in the info), and the protected header names the period
// in "kid" (RFC 7516 section 4.1.6), which picks the key on the way back.
// Every replica derives the same keys: no state.
//
// Tokens without a kid were written before the periods, under the token
// key itself; they are read as before until the store finds them expired.
type tokenSealer struct {
	base   [32]byte
	legacy cipher.AEAD // the token key itself, for tokens without a kid
	clock  gatehouse.Clock
	maxAge time.Duration // tokenKeyMaxAge or longer

	// cur is the current period's key, the seal path's only lookup.
	cur atomic.Pointer[periodKey]
	// keys caches the derived key of each period seen in the window
	// (current, previous, the next for skew, older ones for long-lived
	// tokens): one HKDF per period, never one per token.
	mu   sync.RWMutex
	keys map[int64]*periodKey
}

type periodKey struct {
	n   int64
	kid string
	kek cipher.AEAD
}

const (
	// tokenKeyPeriod: a day. The 2^32 bound is per key across all
	// replicas (they derive the same keys); a day's key reaches it only at
	// 2^32/86,400 = 49,710 tokens/s sustained for the whole day, 16 times
	// the ~3,000/s code-to-token rate one replica reaches
	// (docs/benchmarks.md): at that rate a day is 2.6e8 < 2^28 wraps.
	tokenKeyPeriod = 24 * time.Hour
	// tokenKeyMaxAge: kids up to this far back are read, so a token lives
	// its whole lifetime (an app's access token lifetime is at most 90
	// days, api.maxTTL; a longer server default raises it; the store
	// refuses expired tokens anyway). A kid older than that, or beyond the
	// next period (clock skew between replicas), is refused before any
	// key is derived.
	tokenKeyMaxAge = 91 * 24 * time.Hour
	// tokenKidPrefix marks a kid as a period index: "d" and the day.
	tokenKidPrefix = "d"
)

// newTokenSealer: ttl is the server's default access token lifetime.
func newTokenSealer(key [32]byte, clock gatehouse.Clock, ttl time.Duration) (*tokenSealer, error) {
	kek, err := newGCM(key[:])
	if err != nil {
		return nil, err
	}
	return &tokenSealer{base: key, legacy: kek, clock: clock, maxAge: max(tokenKeyMaxAge, ttl+tokenKeyPeriod), keys: map[int64]*periodKey{}}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// periodOf is the index of t's period (days since the Unix epoch).
func periodOf(t time.Time) int64 {
	s := t.Unix()
	p := int64(tokenKeyPeriod / time.Second)
	if s < 0 {
		return (s - p + 1) / p
	}
	return s / p
}

// tokenPeriodKey is period n's key-wrapping key: HKDF-SHA256 (RFC 5869)
// of the token key, the purpose and the period in the info.
func tokenPeriodKey(base [32]byte, n int64) []byte {
	key, err := hkdf.Key(sha256.New, base[:], nil, "gatehouse op access token key wrap, day "+strconv.FormatInt(n, 10), 32)
	if err != nil {
		panic("op: hkdf: " + err.Error()) // only for a length over 255*32
	}
	return key
}

// periodKeyFor returns period n's key, derived once.
func (s *tokenSealer) periodKeyFor(n int64) (*periodKey, error) {
	s.mu.RLock()
	k := s.keys[n]
	s.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	kek, err := newGCM(tokenPeriodKey(s.base, n))
	if err != nil {
		return nil, err
	}
	k = &periodKey{n: n, kid: tokenKidPrefix + strconv.FormatInt(n, 10), kek: kek}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.keys[n]; old != nil {
		return old, nil
	}
	// Keys of periods that left the window go.
	lo := periodOf(s.clock.Now().Add(-s.maxAge))
	for p := range s.keys {
		if p < lo {
			delete(s.keys, p)
		}
	}
	s.keys[n] = k
	return k, nil
}

// current is the key of the period now.
func (s *tokenSealer) current() (*periodKey, error) {
	n := periodOf(s.clock.Now())
	if k := s.cur.Load(); k != nil && k.n == n {
		return k, nil
	}
	k, err := s.periodKeyFor(n)
	if err != nil {
		return nil, err
	}
	s.cur.Store(k)
	return k, nil
}

// Encrypt is seal, for zitadel (client_credentials).
func (s *tokenSealer) Encrypt(plaintext string) (string, error) { return s.seal(plaintext) }

// seal encrypts plaintext under a fresh content key.
func (s *tokenSealer) seal(plaintext string) (string, error) {
	k, err := s.current()
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	// The content key, and the 96-bit IVs of the key wrap and of the
	// content (RFC 7518 sections 4.7.1.1 and 5.3); all random.
	var rnd [32 + 12 + 12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	cek, wrapIV, iv := rnd[:32], rnd[32:44], rnd[44:]
	wrapped := k.kek.Seal(nil, wrapIV, cek, nil)
	encKey, tag := wrapped[:32], wrapped[32:]
	// The protected header carries the key wrap's IV and tag (RFC 7518
	// section 4.7.1) and the period (kid); it is the content's additional
	// authenticated data.
	header := `{"alg":"A256GCMKW","enc":"A256GCM","iv":"` + enc.EncodeToString(wrapIV) + `","kid":"` + k.kid + `","tag":"` + enc.EncodeToString(tag) + `"}`
	gcm, err := newGCM(cek)
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

var errToken = errors.New("op: invalid access token")

// jweHeader is every protected header field a token may carry; any other
// (crit, zip, jku...) is refused (RFC 7516 section 4.1.13: fail on what
// is not understood).
type jweHeader struct {
	Alg string `json:"alg"`
	Enc string `json:"enc"`
	IV  string `json:"iv"`
	Tag string `json:"tag"`
	Kid string `json:"kid"`
}

// kekFor is the key-wrapping key the kid names: a period key in the
// window, or the token key itself without a kid. Nothing else.
func (s *tokenSealer) kekFor(kid string) (cipher.AEAD, error) {
	if kid == "" {
		return s.legacy, nil
	}
	digits, ok := strings.CutPrefix(kid, tokenKidPrefix)
	if !ok || digits == "" || len(digits) > 12 {
		return nil, errToken
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	// Only the canonical form names a period ("d020" is not "d20").
	if err != nil || strconv.FormatInt(n, 10) != digits {
		return nil, errToken
	}
	now := s.clock.Now()
	if n < periodOf(now.Add(-s.maxAge)) || n > periodOf(now)+1 {
		return nil, errToken
	}
	k, err := s.periodKeyFor(n)
	if err != nil {
		return nil, err
	}
	return k.kek, nil
}

// Decrypt opens a token seal wrote (or one without a kid, written before
// the periods). Both AEADs must authenticate: the key wrap's, and the
// content's over the protected header as written.
func (s *tokenSealer) Decrypt(token string) (string, error) {
	var parts [5]string
	rest := token
	for i := range 4 {
		var ok bool
		if parts[i], rest, ok = strings.Cut(rest, "."); !ok {
			return "", errToken
		}
	}
	parts[4] = rest
	if strings.Contains(rest, ".") {
		return "", errToken
	}
	enc := base64.RawURLEncoding.Strict()
	raw, err := enc.DecodeString(parts[0])
	if err != nil {
		return "", errToken
	}
	var h jweHeader
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || dec.More() || h.Alg != "A256GCMKW" || h.Enc != "A256GCM" {
		return "", errToken
	}
	kek, err := s.kekFor(h.Kid)
	if err != nil {
		return "", errToken
	}
	// Fixed sizes: 96-bit IVs, 128-bit tags, a 256-bit content key (a
	// wrong nonce length would panic in cipher.AEAD).
	wrapIV, err1 := enc.DecodeString(h.IV)
	wrapTag, err2 := enc.DecodeString(h.Tag)
	encKey, err3 := enc.DecodeString(parts[1])
	iv, err4 := enc.DecodeString(parts[2])
	ct, err5 := enc.DecodeString(parts[3])
	tag, err6 := enc.DecodeString(parts[4])
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil ||
		len(wrapIV) != 12 || len(wrapTag) != 16 || len(encKey) != 32 || len(iv) != 12 || len(tag) != 16 {
		return "", errToken
	}
	cek, err := kek.Open(nil, wrapIV, append(encKey, wrapTag...), nil)
	if err != nil {
		return "", errToken
	}
	gcm, err := newGCM(cek)
	if err != nil {
		return "", errToken
	}
	plain, err := gcm.Open(nil, iv, append(ct, tag...), []byte(parts[0]))
	if err != nil {
		return "", errToken
	}
	return string(plain), nil
}
