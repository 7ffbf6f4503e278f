package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	jsonv2 "encoding/json/v2"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Our own ID token check (OIDC Core §3.1.3.7), in one pass over the
// compact JWS: the header and the claims are each decoded once, into a
// struct and a map, without go-jose's and go-oidc's reflection-heavy
// parsing (which took as much CPU as the signature itself). go-oidc's
// verifier stays in the tests as the oracle (oracle_test.go): whatever
// this accepts, it accepts too, with the same claims.
//
// It is stricter than the oracle where the standards are: no whitespace
// or padding in the compact form and canonical base64url (RFC 7515 §7.1),
// no duplicate member names in the header or the claims (RFC 7515 §5.2
// step 4, RFC 7519 §7.2 step 3), valid UTF-8, no "crit" header (RFC 7515
// §4.1.11: we understand no extension), PS* salts as long as the hash
// (RFC 7518 §3.5), nbf within ClockSkew.

// idToken holds a verified ID token's registered claims.
type idToken struct {
	Issuer          string
	Subject         string
	Audience        []string
	Expiry          time.Time
	IssuedAt        time.Time
	Nonce           string
	AccessTokenHash string
	alg             string
}

// jwsHeader is the protected header's members that matter here. Key
// hints other than kid (jwk, jku, x5u, x5c, x5t) are never used to find a
// key: the key comes from the provider's JWKS (or is the client secret).
type jwsHeader struct {
	Alg  string `json:"alg"`
	Kid  string `json:"kid"`
	Crit any    `json:"crit"`
}

var b64 = base64.RawURLEncoding.Strict()

// errIDToken is the cause of every refusal; the message says which rule.
func idTokenErr(format string, args ...any) error {
	return fmt.Errorf("id token: "+format, args...)
}

// checkIDToken verifies raw as an ID token of this connection for nonce,
// at now: signature with an allowed algorithm and the right key, then
// iss, aud, azp, exp, iat, nbf, nonce and sub. It returns the registered
// claims and every claim. Any failure is an error (fail closed).
func (k *conn) checkIDToken(ctx context.Context, md *Metadata, raw, nonce string, now time.Time) (*idToken, map[string]any, error) {
	// RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.'
	// BASE64URL(signature), exactly three parts.
	h64, rest, ok := strings.Cut(raw, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(s64, ".") {
		return nil, nil, idTokenErr("malformed: not a compact JWS of three parts")
	}
	// RFC 7515 §7.1: no whitespace. encoding/base64 skips CR and LF even
	// in Strict mode, so without this one token had many accepted forms
	// (a newline anywhere in the signature).
	if strings.ContainsAny(raw, " \t\r\n") {
		return nil, nil, idTokenErr("malformed: whitespace in the compact JWS")
	}
	hb, err := b64.DecodeString(h64)
	if err != nil {
		return nil, nil, idTokenErr("malformed header: %v", err)
	}
	var h jwsHeader
	if err := jsonv2.Unmarshal(hb, &h); err != nil {
		return nil, nil, idTokenErr("malformed header: %v", err)
	}
	if h.Crit != nil {
		return nil, nil, idTokenErr("critical header extension %v is not understood", h.Crit)
	}
	// Step 6-7: the algorithm must be on the connection's allow-list
	// ("none" never is: Configure refuses it). This check comes before any
	// key is chosen, so a header cannot pick the kind of key.
	if h.Alg == "" || !slices.Contains(k.cfg.AllowedAlgs, h.Alg) || strings.EqualFold(h.Alg, "none") {
		return nil, nil, idTokenErr("unexpected signature algorithm %q; expected %q", h.Alg, k.cfg.AllowedAlgs)
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return nil, nil, idTokenErr("malformed signature: %v", err)
	}
	signed := raw[:len(h64)+1+len(p64)]
	if err := k.checkSignature(ctx, md, &h, []byte(signed), sig); err != nil {
		return nil, nil, idTokenErr("%v", err)
	}
	pb, err := b64.DecodeString(p64)
	if err != nil {
		return nil, nil, idTokenErr("malformed payload: %v", err)
	}
	var claims map[string]any
	if err := jsonv2.Unmarshal(pb, &claims); err != nil || claims == nil {
		return nil, nil, idTokenErr("malformed claims: %v", err)
	}
	t, err := registeredClaims(claims)
	if err != nil {
		return nil, nil, idTokenErr("%v", err)
	}
	t.alg = h.Alg
	return t, claims, k.checkClaims(md, t, claims, nonce, now)
}

// registeredClaims reads the registered claims with their JSON types
// (RFC 7519 §4.1): a claim of another type refuses the token.
func registeredClaims(c map[string]any) (*idToken, error) {
	t := &idToken{}
	for name, dst := range map[string]*string{"iss": &t.Issuer, "sub": &t.Subject, "nonce": &t.Nonce, "at_hash": &t.AccessTokenHash} {
		if v, ok := c[name]; ok {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("claim %s is not a string", name)
			}
			*dst = s
		}
	}
	// aud: one string or an array of strings (RFC 7519 §4.1.3).
	switch a := c["aud"].(type) {
	case nil:
	case string:
		t.Audience = []string{a}
	case []any:
		for _, v := range a {
			s, ok := v.(string)
			if !ok {
				return nil, errors.New("claim aud holds a non-string")
			}
			t.Audience = append(t.Audience, s)
		}
	default:
		return nil, errors.New("claim aud is neither a string nor an array")
	}
	var err error
	if t.Expiry, err = numericDate(c, "exp"); err != nil {
		return nil, err
	}
	if t.IssuedAt, err = numericDate(c, "iat"); err != nil {
		return nil, err
	}
	if _, err = numericDate(c, "nbf"); err != nil {
		return nil, err
	}
	return t, nil
}

// maxNumericDate bounds a NumericDate to what a float64 holds exactly.
const maxNumericDate = 1 << 53

// numericDate reads a NumericDate claim (RFC 7519 §2: seconds since the
// epoch, a JSON number, fractions allowed and dropped); zero when absent.
func numericDate(c map[string]any, name string) (time.Time, error) {
	v, ok := c[name]
	if !ok {
		return time.Time{}, nil
	}
	f, ok := v.(float64)
	if !ok || f < 0 || f >= maxNumericDate {
		return time.Time{}, fmt.Errorf("claim %s is not a usable NumericDate", name)
	}
	return time.Unix(int64(f), 0), nil
}

// checkClaims applies OIDC Core §3.1.3.7 steps 2-11 to a token whose
// signature verified.
func (k *conn) checkClaims(md *Metadata, t *idToken, claims map[string]any, nonce string, now time.Time) error {
	// Step 2: the issuer, exactly. For Entra ID's multi-tenant template,
	// the template completed with the token's own tid.
	if md.Template() {
		tid, _ := claims["tid"].(string)
		if tid == "" || strings.ContainsAny(tid, "/?#") {
			return idTokenErr("no usable tid claim for the templated issuer")
		}
		if want := strings.Replace(md.Issuer, tenantTemplate, tid, 1); t.Issuer != want {
			return idTokenErr("issued by %q, want %q", t.Issuer, want)
		}
	} else if t.Issuer != md.Issuer {
		return idTokenErr("issued by a different provider, expected %q got %q", md.Issuer, t.Issuer)
	}
	if tids := k.cfg.AllowedTenantIDs; len(tids) > 0 {
		if tid, _ := claims["tid"].(string); !slices.Contains(tids, tid) {
			return idTokenErr("directory (tid) %q is not in allowed_tenant_ids", tid)
		}
	}
	// Step 3: aud contains our client_id, and every audience is us or
	// one we trust.
	if !slices.Contains(t.Audience, k.cfg.ClientID) {
		return idTokenErr("expected audience %q got %q", k.cfg.ClientID, t.Audience)
	}
	for _, a := range t.Audience {
		if a != k.cfg.ClientID && !slices.Contains(k.cfg.TrustedAudiences, a) {
			return idTokenErr("untrusted audience %q", a)
		}
	}
	// Steps 4-5: with several audiences azp must be present; when present
	// it must be our client id.
	azpv, hasAZP := claims["azp"]
	if len(t.Audience) > 1 && !hasAZP {
		return idTokenErr("several audiences %q and no azp", t.Audience)
	}
	if azp, _ := azpv.(string); hasAZP && azp != k.cfg.ClientID {
		return idTokenErr("azp %v is not our client id", azpv)
	}
	// Step 9: exp is required and not past (with ClockSkew for the IdP's
	// clock).
	if t.Expiry.IsZero() {
		return idTokenErr("no exp")
	}
	if t.Expiry.Before(now.Add(-ClockSkew)) {
		return idTokenErr("expired at %s (now %s)", t.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	// Step 10: iat is required; one in the future means a wrong clock or
	// a forged token.
	if t.IssuedAt.IsZero() {
		return idTokenErr("no iat")
	}
	if t.IssuedAt.After(now.Add(ClockSkew)) {
		return idTokenErr("issued in the future (iat %s, now %s)", t.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	// RFC 7519 §4.1.5: not before nbf.
	if nbf, _ := numericDate(claims, "nbf"); !nbf.IsZero() && nbf.After(now.Add(ClockSkew)) {
		return idTokenErr("not valid before %s (now %s)", nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	// Step 11: the nonce sent in Begin, compared in constant time.
	if nonce == "" || subtle.ConstantTimeCompare([]byte(t.Nonce), []byte(nonce)) != 1 {
		return idTokenErr("nonce mismatch (present=%v)", t.Nonce != "")
	}
	if t.Subject == "" {
		return idTokenErr("no sub")
	}
	return nil
}

// checkSignature verifies sig over signed with the key for h: the client
// secret for an allowed HMAC algorithm (OIDC Core §10.1), otherwise a key
// of the provider's JWKS with h's kid (never the reverse: an HS256 token
// "signed" with a public key is refused). An unknown kid refetches the
// key set, at most once per KeysMinInterval.
func (k *conn) checkSignature(ctx context.Context, md *Metadata, h *jwsHeader, signed, sig []byte) error {
	if slices.Contains(hmacAlgs, h.Alg) {
		// RFC 7518 §3.2: a key at least as long as the hash.
		if k.sec.ClientSecret == "" || 8*len(k.sec.ClientSecret) < hmacBits(h.Alg) {
			return errors.New("HMAC-signed token and no client secret long enough for it")
		}
		mac := hmac.New(cryptoHash(h.Alg).New, []byte(k.sec.ClientSecret))
		mac.Write(signed)
		if !hmac.Equal(mac.Sum(nil), sig) {
			return errors.New("the signature does not verify with the client secret")
		}
		return nil
	}
	ks := k.t.cache.keySet(md.JWKSURI)
	keys, err := ks.get(ctx, k.env, false)
	if err != nil {
		return fmt.Errorf("key set %s: %w", md.JWKSURI, err)
	}
	cands := candidates(keys, h.Kid, h.Alg)
	if len(cands) == 0 {
		// An unknown kid: the provider may have rotated its keys.
		if keys, err = ks.get(ctx, k.env, true); err != nil {
			return fmt.Errorf("key set %s: %w", md.JWKSURI, err)
		}
		cands = candidates(keys, h.Kid, h.Alg)
	}
	if len(cands) == 0 {
		return fmt.Errorf("no key with kid %q for %s in the provider's key set", h.Kid, h.Alg)
	}
	// OIDC Core §10.1: with several keys in the set, the token names its
	// key by kid. Trying many candidates (no kid, or a kid shared by
	// thousands of keys in a padded 2 MiB set) would cost up to a second
	// of CPU per forged token.
	if len(cands) > maxKeyCandidates {
		return fmt.Errorf("%d keys with kid %q for %s in the provider's key set; at most %d are tried", len(cands), h.Kid, h.Alg, maxKeyCandidates)
	}
	for _, key := range cands {
		if verifyAsym(h.Alg, key, signed, sig) {
			return nil
		}
	}
	return fmt.Errorf("the signature does not verify with the provider's key %q", h.Kid)
}

// maxKeyCandidates is the most keys one signature is checked against.
const maxKeyCandidates = 16

// cryptoHash is the hash of an RS/PS/ES/HS algorithm (RFC 7518 §3.1).
func cryptoHash(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

// verifyAsym checks an asymmetric signature (RFC 7518 §3.3-3.5, RFC 8037
// §3.1) with key, whose type must be the algorithm's.
func verifyAsym(alg string, key jose.JSONWebKey, signed, sig []byte) bool {
	if alg == "EdDSA" {
		pub, ok := key.Key.(ed25519.PublicKey)
		return ok && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, signed, sig)
	}
	if len(alg) != 5 {
		return false
	}
	h := cryptoHash(alg)
	hh := h.New()
	hh.Write(signed)
	digest := hh.Sum(nil)
	switch alg[:2] {
	case "RS":
		pub, ok := key.Key.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
	case "PS":
		pub, ok := key.Key.(*rsa.PublicKey)
		return ok && rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}) == nil
	case "ES":
		pub, ok := key.Key.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		// RFC 7518 §3.4: the curve is the algorithm's, and the signature
		// is R || S, each the curve's size.
		var curve elliptic.Curve
		switch alg {
		case "ES256":
			curve = elliptic.P256()
		case "ES384":
			curve = elliptic.P384()
		case "ES512":
			curve = elliptic.P521()
		default:
			return false
		}
		size := (curve.Params().BitSize + 7) / 8
		if pub.Curve != curve || len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}

// checkAccessTokenHash applies OIDC Core §3.1.3.8: at_hash is the
// base64url of the left half of the access token's hash, the hash being
// the ID token's algorithm's (SHA-512 for EdDSA with Ed25519).
func checkAccessTokenHash(t *idToken, accessToken string) error {
	var h hash.Hash
	switch {
	case t.alg == "EdDSA":
		h = sha512.New()
	case len(t.alg) == 5:
		h = cryptoHash(t.alg).New()
	default:
		return fmt.Errorf("no at_hash rule for algorithm %q", t.alg)
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	want := base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	if subtle.ConstantTimeCompare([]byte(want), []byte(t.AccessTokenHash)) != 1 {
		return errors.New("access token hash does not match the ID token's at_hash")
	}
	return nil
}
