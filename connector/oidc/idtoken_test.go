package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// Table and differential tests of our ID token check (idtoken.go) against
// the oracle (oracle_test.go: go-oidc's verifier and the rules around it).

const (
	tIssuer   = "https://idp.test"
	tClient   = "client-1"
	tSecret   = "hs-secret-0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdefg" // 64 bytes: enough for HS512
	tNonce    = "nonce-1"
	tJWKSURI  = "https://idp.test/jwks"
	tTrusted  = "api://trusted"
	tTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

var tNow = time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)

type testKeys struct {
	rsa     *rsa.PrivateKey
	p256    *ecdsa.PrivateKey
	p384    *ecdsa.PrivateKey
	p521    *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
	other   *ecdsa.PrivateKey // not in the JWKS
	rsaAlso *rsa.PrivateKey   // in the JWKS under kid "rsa-2"
}

var (
	keysOnce sync.Once
	theKeys  testKeys
)

func tkeys() *testKeys {
	keysOnce.Do(func() {
		must := func(k any, err error) any {
			if err != nil {
				panic(err)
			}
			return k
		}
		theKeys.rsa = must(rsa.GenerateKey(rand.Reader, 2048)).(*rsa.PrivateKey)
		theKeys.rsaAlso = must(rsa.GenerateKey(rand.Reader, 2048)).(*rsa.PrivateKey)
		theKeys.p256 = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).(*ecdsa.PrivateKey)
		theKeys.p384 = must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)).(*ecdsa.PrivateKey)
		theKeys.p521 = must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)).(*ecdsa.PrivateKey)
		theKeys.other = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).(*ecdsa.PrivateKey)
		_, theKeys.ed, _ = ed25519.GenerateKey(rand.Reader)
	})
	return &theKeys
}

// jwks is the provider's key set: kid → public key. The RSA key serves
// RS* and PS* (no alg member), the others name their algorithm.
func (tk *testKeys) jwks() []jose.JSONWebKey {
	return []jose.JSONWebKey{
		{Key: &tk.rsa.PublicKey, KeyID: "rsa-1", Use: "sig"},
		{Key: &tk.rsaAlso.PublicKey, KeyID: "rsa-2", Use: "sig", Algorithm: "RS256"},
		{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"},
		{Key: &tk.p384.PublicKey, KeyID: "ec-384", Algorithm: "ES384"},
		{Key: &tk.p521.PublicKey, KeyID: "ec-521", Algorithm: "ES512"},
		{Key: tk.ed.Public(), KeyID: "ed", Algorithm: "EdDSA"},
	}
}

// testConn is a connection whose key set is already cached (no HTTP).
func testConn(t testing.TB, mod func(cfg *Config), md *Metadata) *conn {
	t.Helper()
	cfg := &Config{Issuer: tIssuer, ClientID: tClient, AllowedAlgs: append(append([]string{}, DefaultAlgs...), "HS256", "HS384", "HS512"),
		TrustedAudiences: []string{tTrusted}}
	if mod != nil {
		mod(cfg)
	}
	k := &conn{t: &oidcType{cache: newCache()}, env: connector.Env{Clock: fixedClock{tNow}},
		c: &gatehouse.Connection{ID: "con_1", TenantID: "ten_1"}, cfg: cfg, sec: &Secrets{ClientSecret: tSecret}}
	ks := k.t.cache.keySet(md.JWKSURI)
	ks.keys, ks.fetched, ks.tried = tkeys().jwks(), tNow, tNow
	return k
}

func testMetadata() *Metadata { return &Metadata{Issuer: tIssuer, JWKSURI: tJWKSURI} }

func b64s(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signJWS signs header.payload (both raw JSON) with alg and key; key is
// a private key, or []byte for HMAC.
func signJWS(t testing.TB, alg string, key any, header, payload string) string {
	t.Helper()
	in := b64s([]byte(header)) + "." + b64s([]byte(payload))
	var sig []byte
	var err error
	switch {
	case alg == "EdDSA":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), []byte(in))
	case strings.HasPrefix(alg, "HS"):
		m := hmac.New(cryptoHash(alg).New, key.([]byte))
		m.Write([]byte(in))
		sig = m.Sum(nil)
	default:
		h := cryptoHash(alg)
		hh := h.New()
		hh.Write([]byte(in))
		d := hh.Sum(nil)
		switch alg[:2] {
		case "RS":
			sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), h, d)
		case "PS":
			sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), h, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		case "ES":
			pk := key.(*ecdsa.PrivateKey)
			size := (pk.Curve.Params().BitSize + 7) / 8
			r, s, e := ecdsa.Sign(rand.Reader, pk, d)
			err = e
			sig = make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64s(sig)
}

func baseClaims() map[string]any {
	return map[string]any{"iss": tIssuer, "sub": "user-1", "aud": tClient, "exp": tNow.Add(5 * time.Minute).Unix(),
		"iat": tNow.Unix(), "nonce": tNonce, "email": "ada@example.com", "groups": []string{"a", "b"}, "n": 1.5}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tokenFor signs claims with the default key of alg.
func tokenFor(t testing.TB, alg string, claims map[string]any) string {
	tk := tkeys()
	var key any
	kid := ""
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		key, kid = tk.rsa, "rsa-1"
	case "ES256":
		key, kid = tk.p256, "ec-256"
	case "ES384":
		key, kid = tk.p384, "ec-384"
	case "ES512":
		key, kid = tk.p521, "ec-521"
	case "EdDSA":
		key, kid = tk.ed, "ed"
	case "HS256", "HS384", "HS512":
		key = []byte(tSecret)
	}
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	return signJWS(t, alg, key, mustJSON(t, h), mustJSON(t, claims))
}

// both runs our check and the oracle on raw; it fails t when we accept
// what the oracle refuses, or accept with other claims than it reads.
func both(t testing.TB, k *conn, md *Metadata, raw, nonce string) (ours, oracle error) {
	t.Helper()
	ctx := context.Background()
	idt, claims, ours := k.verify(ctx, md, raw, nonce)
	oidt, oclaims, oracle := k.verifyGoOIDC(ctx, md, raw, nonce)
	if ours == nil {
		if oracle != nil {
			t.Fatalf("we accept what go-oidc refuses (%v): %s", oracle, raw)
		}
		if !reflect.DeepEqual(claims, oclaims) {
			t.Fatalf("claims differ:\nours   %v\noracle %v", claims, oclaims)
		}
		if idt.Issuer != oidt.Issuer || idt.Subject != oidt.Subject || !reflect.DeepEqual(idt.Audience, oidt.Audience) ||
			!idt.Expiry.Equal(oidt.Expiry) || !idt.IssuedAt.Equal(oidt.IssuedAt) || idt.Nonce != oidt.Nonce || idt.AccessTokenHash != oidt.AccessTokenHash {
			t.Fatalf("registered claims differ:\nours   %+v\noracle %+v", idt, oidt)
		}
	} else if gatehouse.ErrorCode(ours) != gatehouse.EFORBIDDEN || gatehouse.ErrorMessage(ours) != idTokenMessage {
		t.Fatalf("refusal %v: want EFORBIDDEN with the ID token message", ours)
	}
	return ours, oracle
}

// TestIDTokenRules: each rule of OIDC Core §3.1.3.7 (and RFC 7515/7518/
// 7519 for the JWS itself), one token each, through our check and the
// oracle. stricter marks a token the oracle accepts and we refuse, on
// purpose (the comment says why).
func TestIDTokenRules(t *testing.T) {
	tk := tkeys()
	edit := func(f func(c map[string]any)) map[string]any { c := baseClaims(); f(c); return c }
	hdr := func(alg, kid string) string { return `{"alg":"` + alg + `","kid":"` + kid + `"}` }
	base := mustJSON(t, baseClaims())
	ok := tokenFor(t, "RS256", baseClaims())
	parts := strings.Split(ok, ".")
	for _, tc := range []struct {
		name     string
		raw      string
		mod      func(cfg *Config)
		md       *Metadata
		secret   string
		nonce    string
		accept   bool
		stricter bool
		cause    string
	}{
		// Every allowed algorithm with the right key (RFC 7518 §3.1, RFC 8037).
		{name: "RS256", raw: ok, accept: true},
		{name: "RS384", raw: tokenFor(t, "RS384", baseClaims()), accept: true},
		{name: "RS512", raw: tokenFor(t, "RS512", baseClaims()), accept: true},
		{name: "PS256", raw: tokenFor(t, "PS256", baseClaims()), accept: true},
		{name: "PS384", raw: tokenFor(t, "PS384", baseClaims()), accept: true},
		{name: "PS512", raw: tokenFor(t, "PS512", baseClaims()), accept: true},
		{name: "ES256", raw: tokenFor(t, "ES256", baseClaims()), accept: true},
		{name: "ES384", raw: tokenFor(t, "ES384", baseClaims()), accept: true},
		{name: "ES512", raw: tokenFor(t, "ES512", baseClaims()), accept: true},
		{name: "EdDSA", raw: tokenFor(t, "EdDSA", baseClaims()), accept: true},
		{name: "HS256 with the client secret, allowed", raw: tokenFor(t, "HS256", baseClaims()), accept: true},
		{name: "HS512 with the client secret, allowed", raw: tokenFor(t, "HS512", baseClaims()), accept: true},
		// RFC 7518 §3.2: an HMAC key at least as long as the hash (Configure
		// refuses such a connection; the check refuses the token too).
		{name: "HS512 with a secret shorter than the hash", raw: tokenFor(t, "HS512", baseClaims()), secret: tSecret[:63], cause: "client secret"},
		{name: "no kid: every key of the algorithm is tried", raw: signJWS(t, "ES256", tk.p256, `{"alg":"ES256"}`, base), accept: true},
		{name: "second RSA key by kid", raw: signJWS(t, "RS256", tk.rsaAlso, hdr("RS256", "rsa-2"), base), accept: true},
		// Algorithm rules (OIDC Core §3.1.3.7 step 7, §10.1; RFC 8725 §3.1-3.2).
		{name: "alg none", raw: b64s([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", cause: "unexpected signature algorithm"},
		{name: "alg None", raw: b64s([]byte(`{"alg":"None"}`)) + "." + parts[1] + ".", cause: "unexpected signature algorithm"},
		{name: "no alg", raw: signJWS(t, "RS256", tk.rsa, `{"kid":"rsa-1"}`, base), cause: "unexpected signature algorithm"},
		{name: "algorithm not on the allow-list", raw: tokenFor(t, "ES256", baseClaims()), mod: func(c *Config) { c.AllowedAlgs = []string{"RS256"} }, cause: "unexpected signature algorithm"},
		{name: "HS256 not allowed", raw: tokenFor(t, "HS256", baseClaims()), mod: func(c *Config) { c.AllowedAlgs = DefaultAlgs }, cause: "unexpected signature algorithm"},
		{name: "HS256 keyed with the RSA public key's modulus", raw: signJWS(t, "HS256", tk.rsa.PublicKey.N.Bytes(), hdr("HS256", "rsa-1"), base), cause: "client secret"},
		{name: "HS256 with another secret", raw: signJWS(t, "HS256", []byte("another-secret-0123456789abcdefghij"), `{"alg":"HS256"}`, base), cause: "client secret"},
		{name: "RS256 signature under an ES256 header", raw: b64s([]byte(hdr("ES256", "rsa-1"))) + "." + parts[1] + "." + parts[2], cause: "does not verify"},
		{name: "ES256 signed by the P-384 key's kid", raw: signJWS(t, "ES256", tk.p256, hdr("ES256", "ec-384"), base), cause: "no key with kid"},
		{name: "PS256 claimed, RS256 signature", raw: b64s([]byte(hdr("PS256", "rsa-1"))) + "." + parts[1] + "." + parts[2], cause: "does not verify"},
		{name: "EdDSA signature by another key", raw: func() string {
			_, o, _ := ed25519.GenerateKey(rand.Reader)
			return signJWS(t, "EdDSA", o, hdr("EdDSA", "ed"), base)
		}(), cause: "does not verify"},
		// Key selection (OIDC Core §10.1.1): unknown kid, signature by another key.
		{name: "unknown kid", raw: signJWS(t, "ES256", tk.other, hdr("ES256", "nope"), base), cause: `no key with kid "nope"`},
		{name: "known kid, other key", raw: signJWS(t, "ES256", tk.other, hdr("ES256", "ec-256"), base), cause: "does not verify"},
		{name: "tampered payload", raw: parts[0] + "." + b64s([]byte(mustJSON(t, edit(func(c map[string]any) { c["sub"] = "admin" })))) + "." + parts[2], cause: "does not verify"},
		{name: "truncated signature", raw: parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4], cause: "signature"},
		{name: "ES256 signature one byte short", raw: func() string {
			s := tokenFor(t, "ES256", baseClaims())
			p := strings.Split(s, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			return p[0] + "." + p[1] + "." + b64s(sig[1:])
		}(), cause: "does not verify"},
		// Compact serialization (RFC 7515 §7.1).
		{name: "two parts", raw: parts[0] + "." + parts[1], cause: "malformed"},
		{name: "four parts", raw: ok + ".x", cause: "malformed"},
		{name: "empty", raw: "", cause: "malformed"},
		{name: "header not JSON", raw: b64s([]byte("nope")) + "." + parts[1] + "." + parts[2], cause: "malformed header"},
		{name: "payload not JSON", raw: signJWS(t, "RS256", tk.rsa, hdr("RS256", "rsa-1"), "nope"), cause: "malformed claims"},
		{name: "payload an array", raw: signJWS(t, "RS256", tk.rsa, hdr("RS256", "rsa-1"), "[1]"), cause: "malformed claims"},
		{name: "payload null", raw: signJWS(t, "RS256", tk.rsa, hdr("RS256", "rsa-1"), "null"), cause: "malformed claims"},
		// Stricter than the oracle, on purpose.
		{name: "padded base64 (RFC 7515 §2: no padding)", raw: parts[0] + "." + parts[1] + "." + parts[2] + "==", cause: "malformed signature"},
		{name: "whitespace inside (RFC 7515 §7.1: no whitespace)", raw: parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2], stricter: true, cause: "whitespace"},
		{name: "duplicate claim (RFC 7519 §7.2 step 3)", raw: signJWS(t, "RS256", tk.rsa, hdr("RS256", "rsa-1"), base[:len(base)-1]+`,"sub":"admin"}`), stricter: true, cause: "malformed claims"},
		{name: "duplicate header member (RFC 7515 §5.2 step 4)", raw: signJWS(t, "RS256", tk.rsa, `{"alg":"RS256","kid":"rsa-1","kid":"rsa-2"}`, base), cause: "malformed header"},
		{name: "crit header (RFC 7515 §4.1.11)", raw: signJWS(t, "RS256", tk.rsa, `{"alg":"RS256","kid":"rsa-1","crit":["exp"],"exp":1}`, base), cause: "critical"},
		{name: "invalid UTF-8 in a claim", raw: signJWS(t, "RS256", tk.rsa, hdr("RS256", "rsa-1"), base[:len(base)-1]+`,"x":"`+"\xff"+`"}`), stricter: true, cause: "malformed claims"},
		{name: "nbf 150 s ahead (beyond ClockSkew)", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["nbf"] = tNow.Add(150 * time.Second).Unix() })), stricter: true, cause: "not valid before"},
		{name: "nbf 60 s ahead", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["nbf"] = tNow.Add(60 * time.Second).Unix() })), accept: true},
		// Step 2: iss, exactly.
		{name: "other issuer", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iss"] = "https://evil.test" })), cause: "different provider"},
		{name: "issuer with a trailing slash", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iss"] = tIssuer + "/" })), cause: "different provider"},
		{name: "no issuer", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { delete(c, "iss") })), cause: "different provider"},
		{name: "issuer not a string", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iss"] = 1 })), cause: "not a string"},
		{name: "Entra template: tid completes the issuer", md: &Metadata{Issuer: "https://login.test/{tenantid}/v2.0", JWKSURI: tJWKSURI},
			raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iss"] = "https://login.test/" + tTenantID + "/v2.0"; c["tid"] = tTenantID })), accept: true},
		{name: "Entra template: tid of another tenant", md: &Metadata{Issuer: "https://login.test/{tenantid}/v2.0", JWKSURI: tJWKSURI},
			raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iss"] = "https://login.test/" + tTenantID + "/v2.0"; c["tid"] = "other" })), cause: "issued by"},
		{name: "Entra template: tid with a slash", md: &Metadata{Issuer: "https://login.test/{tenantid}/v2.0", JWKSURI: tJWKSURI},
			raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iss"] = "https://login.test/a/b/v2.0"; c["tid"] = "a/b" })), cause: "tid"},
		{name: "allowed_tenant_ids", mod: func(c *Config) { c.AllowedTenantIDs = []string{"t1"} },
			raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["tid"] = "t2" })), cause: "allowed_tenant_ids"},
		// Steps 3-5: aud and azp.
		{name: "aud as an array", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = []string{tClient} })), accept: true},
		{name: "other audience", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = "client-2" })), cause: "expected audience"},
		{name: "no audience", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { delete(c, "aud") })), cause: "expected audience"},
		{name: "empty audience array", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = []string{} })), cause: "expected audience"},
		{name: "aud a number", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = 5 })), cause: "aud"},
		{name: "aud array holding a number", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = []any{tClient, 5} })), cause: "aud"},
		{name: "untrusted extra audience", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = []string{tClient, "x"}; c["azp"] = tClient })), cause: "untrusted audience"},
		{name: "trusted extra audience with azp", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = []string{tClient, tTrusted}; c["azp"] = tClient })), accept: true},
		{name: "trusted extra audience without azp", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["aud"] = []string{tClient, tTrusted} })), cause: "no azp"},
		{name: "azp of another client", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["azp"] = "client-2" })), cause: "azp"},
		{name: "azp not a string", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["azp"] = 1 })), cause: "azp"},
		{name: "azp ours, one audience", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["azp"] = tClient })), accept: true},
		// Steps 9-10: exp and iat with ClockSkew.
		{name: "expired beyond the skew", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["exp"] = tNow.Add(-ClockSkew - time.Second).Unix() })), cause: "expired"},
		{name: "expired within the skew", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["exp"] = tNow.Add(-ClockSkew + time.Second).Unix() })), accept: true},
		{name: "no exp", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { delete(c, "exp") })), cause: "exp"},
		{name: "exp a string", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["exp"] = "9999999999" })), stricter: true, cause: "exp"}, // RFC 7519 §2: a JSON number; go-oidc reads a numeric string too
		{name: "exp fractional", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["exp"] = float64(tNow.Unix()) + 60.5 })), accept: true},
		{name: "exp huge", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["exp"] = 1e300 })), cause: "exp"},
		{name: "exp negative", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["exp"] = -1 })), cause: "exp"},
		{name: "no iat", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { delete(c, "iat") })), cause: "iat"},
		{name: "iat beyond the skew", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iat"] = tNow.Add(ClockSkew + time.Second).Unix() })), cause: "issued in the future"},
		{name: "iat within the skew", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iat"] = tNow.Add(ClockSkew - time.Second).Unix() })), accept: true},
		{name: "iat a string", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["iat"] = "1" })), stricter: true, cause: "iat"},
		// Step 11: nonce; and sub.
		{name: "other nonce", raw: ok, nonce: "nonce-2", cause: "nonce mismatch"},
		{name: "no nonce claim", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { delete(c, "nonce") })), cause: "nonce mismatch"},
		{name: "no nonce expected", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["nonce"] = "" })), nonce: "-", cause: "nonce mismatch"},
		{name: "nonce not a string", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["nonce"] = 1 })), cause: "nonce"},
		{name: "no sub", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { delete(c, "sub") })), cause: "no sub"},
		{name: "sub not a string", raw: tokenFor(t, "RS256", edit(func(c map[string]any) { c["sub"] = 7 })), cause: "sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := tc.md
			if md == nil {
				md = testMetadata()
			}
			k := testConn(t, tc.mod, md)
			if tc.secret != "" {
				k.sec.ClientSecret = tc.secret
			}
			nonce := tc.nonce
			switch nonce {
			case "":
				nonce = tNonce
			case "-":
				nonce = ""
			}
			ours, oracle := both(t, k, md, tc.raw, nonce)
			if (ours == nil) != tc.accept {
				t.Fatalf("ours: %v, want accept=%v", ours, tc.accept)
			}
			if (oracle == nil) != (tc.accept || tc.stricter) {
				t.Errorf("oracle: %v, want accept=%v (a stricter case is one the oracle accepts)", oracle, tc.accept || tc.stricter)
			}
			if ours != nil && !strings.Contains(ours.Error(), tc.cause) {
				t.Errorf("cause %q does not mention %q", ours, tc.cause)
			}
		})
	}
}

// TestIDTokenUnknownKidRefetch: an unknown kid refetches the key set, at
// most once per KeysMinInterval (a flood of forged kids cannot make us
// hammer the provider), and a known kid with a bad signature never does.
func TestIDTokenUnknownKidRefetch(t *testing.T) {
	md := testMetadata()
	k := testConn(t, nil, md)
	ks := k.t.cache.keySet(md.JWKSURI)
	// Past the interval: the next unknown kid fetches (and here fails:
	// the URL does not resolve), the keys in hand stay.
	ks.tried = tNow.Add(-2 * KeysMinInterval)
	k.env.HTTPClient = failingClient()
	tk := tkeys()
	base := mustJSON(t, baseClaims())
	if _, _, err := k.verify(context.Background(), md, signJWS(t, "ES256", tk.other, `{"alg":"ES256","kid":"new"}`, base), tNonce); err == nil || !strings.Contains(err.Error(), `no key with kid "new"`) {
		t.Fatalf("unknown kid: %v", err)
	}
	if !ks.tried.Equal(tNow) {
		t.Fatalf("no refetch for an unknown kid (tried %v)", ks.tried)
	}
	// Within the interval: no fetch.
	ks.tried = tNow.Add(-KeysMinInterval / 2)
	tried := ks.tried
	if _, _, err := k.verify(context.Background(), md, signJWS(t, "ES256", tk.other, `{"alg":"ES256","kid":"new2"}`, base), tNonce); err == nil {
		t.Fatal("accepted")
	}
	if !ks.tried.Equal(tried) {
		t.Fatal("refetched within KeysMinInterval")
	}
	// A known kid that does not verify: no fetch either.
	ks.tried = tNow.Add(-2 * KeysMinInterval)
	tried = ks.tried
	if _, _, err := k.verify(context.Background(), md, signJWS(t, "ES256", tk.other, `{"alg":"ES256","kid":"ec-256"}`, base), tNonce); err == nil {
		t.Fatal("accepted")
	}
	if !ks.tried.Equal(tried) {
		t.Fatal("refetched for a known kid whose signature failed")
	}
	// The good token still verifies with the cached keys.
	if _, _, err := k.verify(context.Background(), md, tokenFor(t, "ES256", baseClaims()), tNonce); err != nil {
		t.Fatal(err)
	}
}

// TestAccessTokenHash: OIDC Core §3.1.3.8 for each hash size and EdDSA,
// checked against go-oidc's VerifyAccessToken.
func TestAccessTokenHash(t *testing.T) {
	for _, alg := range []string{"RS256", "ES384", "PS512", "EdDSA", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			md := testMetadata()
			k := testConn(t, nil, md)
			at := "access-token-" + alg
			// The right at_hash, computed by go-oidc's rule through the oracle.
			for _, tc := range []struct {
				hash   string
				accept bool
			}{{atHashOf(t, alg, at), true}, {atHashOf(t, alg, at+"x"), false}, {"", false}} {
				c := baseClaims()
				c["at_hash"] = tc.hash
				raw := tokenFor(t, alg, c)
				idt, _, err := k.verify(context.Background(), md, raw, tNonce)
				if err != nil {
					t.Fatal(err)
				}
				ours := checkAccessTokenHash(idt, at)
				oidt, _, err := k.verifyGoOIDC(context.Background(), md, raw, tNonce)
				if err != nil {
					t.Fatal(err)
				}
				oracle := oidt.VerifyAccessToken(at)
				if alg == "HS256" {
					// go-oidc has no at_hash rule for HMAC and refuses every
					// such token; §3.1.3.8 names the alg's hash (SHA-256).
					if oracle == nil {
						t.Fatal("go-oidc checked an HS256 at_hash")
					}
					oracle = ours
				}
				if (ours == nil) != tc.accept || (oracle == nil) != tc.accept {
					t.Fatalf("at_hash %q: ours %v, go-oidc %v, want accept=%v", tc.hash, ours, oracle, tc.accept)
				}
			}
		})
	}
}

func atHashOf(t *testing.T, alg, at string) string {
	h := sha512.New() // EdDSA (Ed25519)
	if alg != "EdDSA" {
		h = cryptoHash(alg).New()
	}
	h.Write([]byte(at))
	sum := h.Sum(nil)
	return b64s(sum[:len(sum)/2])
}

// TestIDTokenMutations: thousands of mutations of valid tokens (bytes
// flipped, dropped, duplicated, parts swapped and re-encoded claims
// re-signed with edits): we never accept what go-oidc refuses, and we
// accept with the same claims (both checks inside).
func TestIDTokenMutations(t *testing.T) {
	md := testMetadata()
	k := testConn(t, nil, md)
	rng := mrand.New(mrand.NewPCG(1, 2))
	seeds := idTokenSeeds(t)
	accepted := 0
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		raw := mutate(rng, seeds[rng.IntN(len(seeds))], seeds)
		if ours, _ := both(t, k, md, raw, tNonce); ours == nil {
			accepted++
		}
	}
	t.Logf("%d of %d mutations accepted (by both)", accepted, n)
}

func idTokenSeeds(t testing.TB) []string {
	var out []string
	for _, alg := range []string{"RS256", "PS256", "ES256", "ES512", "EdDSA", "HS256"} {
		out = append(out, tokenFor(t, alg, baseClaims()))
	}
	c := baseClaims()
	c["aud"] = []string{tClient, tTrusted}
	c["azp"] = tClient
	return append(out, tokenFor(t, "ES256", c))
}

func mutate(rng *mrand.Rand, s string, seeds []string) string {
	b := []byte(s)
	switch rng.IntN(6) {
	case 0: // flip a bit
		if len(b) > 0 {
			b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		}
	case 1: // drop a byte
		if len(b) > 0 {
			i := rng.IntN(len(b))
			b = append(b[:i], b[i+1:]...)
		}
	case 2: // duplicate a byte
		if len(b) > 0 {
			i := rng.IntN(len(b))
			b = append(b[:i+1], b[i:]...)
		}
	case 3: // a part from another token
		p, q := strings.Split(s, "."), strings.Split(seeds[rng.IntN(len(seeds))], ".")
		if len(p) == 3 && len(q) == 3 {
			i := rng.IntN(3)
			p[i] = q[i]
			return strings.Join(p, ".")
		}
	case 4: // a byte of the decoded header or payload changed, re-encoded
		p := strings.Split(s, ".")
		if len(p) == 3 {
			i := rng.IntN(2)
			d, err := base64.RawURLEncoding.DecodeString(p[i])
			if err == nil && len(d) > 0 {
				const chars = "{}[]\",:0a\\ \x00"
				d[rng.IntN(len(d))] = chars[rng.IntN(len(chars))]
				p[i] = b64s(d)
			}
			return strings.Join(p, ".")
		}
	case 5: // an edited claim, properly re-signed with HS256 (the secret we hold)
		c := baseClaims()
		keys := []string{"iss", "sub", "aud", "exp", "iat", "nonce", "azp", "nbf"}
		vals := []any{nil, "", 0, -1, 1.5, tClient, tIssuer, tNonce, []any{}, []any{tClient, 1}, map[string]any{}, tNow.Unix(), tNow.Add(time.Hour).Unix(), float64(1 << 60)}
		name := keys[rng.IntN(len(keys))]
		if v := vals[rng.IntN(len(vals))]; v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
		in := b64s([]byte(`{"alg":"HS256"}`)) + "." + b64s(mustJSONAny(c))
		m := hmac.New(sha256.New, []byte(tSecret))
		m.Write([]byte(in))
		return in + "." + b64s(m.Sum(nil))
	}
	return string(b)
}

func mustJSONAny(v any) []byte { b, _ := json.Marshal(v); return b }

// FuzzIDTokenDifferential: arbitrary tokens through both checks; we
// never accept what go-oidc refuses, and read the same claims.
//
//	go test ./connector/oidc -run '^$' -fuzz FuzzIDTokenDifferential -fuzztime 60s
func FuzzIDTokenDifferential(f *testing.F) {
	for _, s := range idTokenSeeds(f) {
		f.Add(s)
	}
	f.Add("")
	f.Add("a.b.c")
	md := testMetadata()
	k := testConn(f, nil, md)
	f.Fuzz(func(t *testing.T, raw string) {
		both(t, k, md, raw, tNonce)
	})
}

// BenchmarkVerifyIDToken: our check against go-oidc's, an ES256 token.
//
//	go test ./connector/oidc -run '^$' -bench VerifyIDToken
func BenchmarkVerifyIDToken(b *testing.B) {
	md := testMetadata()
	k := testConn(b, nil, md)
	raw := tokenFor(b, "ES256", baseClaims())
	for name, fn := range map[string]func() error{
		"ours":    func() error { _, _, err := k.verify(context.Background(), md, raw, tNonce); return err },
		"go-oidc": func() error { _, _, err := k.verifyGoOIDC(context.Background(), md, raw, tNonce); return err },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}

func failingClient() *http.Client { return &http.Client{Transport: failingTransport{}} }
