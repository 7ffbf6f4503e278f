package oidc

import (
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/oidc/oidctest"
	"github.com/gatehouse-sso/gatehouse/outbound"
)

// Adversarial review of our ID token check (idtoken.go, commit 95bf03a).
// Every token goes through the connector's own verify and, where the
// oracle can judge it, through go-oidc too (both): we must never accept
// what go-oidc refuses, nor read other claims. The classes follow RFC 8725
// (JWT BCP) §2-3 and OIDC Core §3.1.3.7.

// attack is one token; accept is what we must do with it.
type attack struct {
	name   string
	raw    string
	mod    func(cfg *Config)
	md     *Metadata
	nonce  string // "" means tNonce
	accept bool
	cause  string
	// readsOther: the oracle reads other registered claims from this
	// token (it is wrong there, the comment says why); ours alone runs,
	// and an accepted token must name sub "user-1".
	readsOther bool
}

func runAttacks(t *testing.T, attacks []attack) {
	t.Helper()
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			md := tc.md
			if md == nil {
				md = testMetadata()
			}
			k := testConn(t, tc.mod, md)
			nonce := tc.nonce
			if nonce == "" {
				nonce = tNonce
			}
			var ours error
			if tc.readsOther {
				var idt *idToken
				idt, _, ours = k.verify(context.Background(), md, tc.raw, nonce)
				if ours == nil && idt.Subject != "user-1" {
					t.Fatalf("sub %q", idt.Subject)
				}
			} else {
				ours, _ = both(t, k, md, tc.raw, nonce)
			}
			if (ours == nil) != tc.accept {
				t.Fatalf("ours: %v, want accept=%v\n%s", ours, tc.accept, tc.raw)
			}
			if ours != nil && !strings.Contains(ours.Error(), tc.cause) {
				t.Errorf("cause %q does not mention %q", ours, tc.cause)
			}
		})
	}
}

// hmacWith signs header.payload with HS256 keyed by key (any bytes).
func hmacWith(t testing.TB, key []byte, header, payload string) string {
	return signJWS(t, "HS256", key, header, payload)
}

func noHS(c *Config) { c.AllowedAlgs = DefaultAlgs }

// TestAttackAlgorithms: RFC 8725 §2.1-2.2, §3.1: alg none in any case,
// HMAC keyed with public key material (algorithm confusion), HMAC with the
// client secret where the connection does not allow it, algorithm names
// that are almost right.
func TestAttackAlgorithms(t *testing.T) {
	tk := tkeys()
	base := mustJSON(t, baseClaims())
	pay := b64s([]byte(base))
	der, _ := x509.MarshalPKIXPublicKey(&tk.rsa.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&tk.rsa.PublicKey)})
	jwkJSON, _ := json.Marshal(jose.JSONWebKey{Key: &tk.rsa.PublicKey, KeyID: "rsa-1", Use: "sig"})
	ecDER, _ := x509.MarshalPKIXPublicKey(&tk.p256.PublicKey)
	ecRaw := elliptic.Marshal(elliptic.P256(), tk.p256.X, tk.p256.Y) //nolint:staticcheck // the raw point, as an attacker would use it
	var out []attack
	for _, alg := range []string{"none", "None", "NONE", "nOnE", "none ", ""} {
		h := b64s([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
		out = append(out,
			attack{name: "alg " + alg + " empty signature", raw: h + "." + pay + ".", cause: "unexpected signature algorithm"},
			attack{name: "alg " + alg + " with a signature", raw: h + "." + pay + "." + b64s([]byte("x")), cause: "unexpected signature algorithm"},
			// Defence in depth: even a stored config that lists none (Configure
			// refuses it) never accepts an unsigned token.
			attack{name: "alg " + alg + " listed in a stored config", raw: h + "." + pay + ".", mod: func(c *Config) { c.AllowedAlgs = append(c.AllowedAlgs, alg) }, cause: "signature"})
	}
	for name, key := range map[string][]byte{
		"RSA PEM (PKIX)": pemKey, "RSA PEM (PKCS#1)": pkcs1, "RSA DER": der, "RSA modulus": tk.rsa.N.Bytes(),
		"RSA JWK JSON": jwkJSON, "EC DER": ecDER, "EC point": ecRaw, "Ed25519 key": tk.ed.Public().(ed25519.PublicKey),
		"client secret": []byte(tSecret),
	} {
		for _, kid := range []string{"rsa-1", "ec-256", ""} {
			hdr := `{"alg":"HS256","kid":"` + kid + `"}`
			out = append(out, attack{name: "HS256 keyed with " + name + ", HS not allowed, kid " + kid, raw: hmacWith(t, key, hdr, base), mod: noHS, cause: "unexpected signature algorithm"})
			if name != "client secret" {
				out = append(out, attack{name: "HS256 keyed with " + name + ", HS allowed, kid " + kid, raw: hmacWith(t, key, hdr, base), cause: "client secret"})
			}
		}
	}
	// HS384 computed, HS256 claimed (and the reverse): the hash is the alg's.
	in := b64s([]byte(`{"alg":"HS512"}`)) + "." + pay
	hs256 := strings.Split(hmacWith(t, []byte(tSecret), `{"alg":"HS512"}`, base), ".")[2]
	out = append(out, attack{name: "HS512 header, HS256 MAC", raw: in + "." + hs256, cause: "client secret"})
	for _, alg := range []string{"rs256", "RS256 ", " RS256", "RS256\u0000", "RS-256", "RSA256", "RS2560", "ES256K", "Ed25519", "EdDSA\u200b"} {
		h, _ := json.Marshal(map[string]string{"alg": alg, "kid": "rsa-1"})
		out = append(out, attack{name: fmt.Sprintf("alg %q", alg), raw: signJWS(t, "RS256", tk.rsa, string(h), base), cause: "unexpected signature algorithm"})
	}
	for _, h := range []struct{ name, hdr, cause string }{
		{"alg an array", `{"alg":["RS256"],"kid":"rsa-1"}`, "malformed header"},
		{"alg a number", `{"alg":256,"kid":"rsa-1"}`, "malformed header"},
		{"alg null", `{"alg":null,"kid":"rsa-1"}`, "unexpected signature algorithm"},
		{"Alg capitalised, no alg", `{"Alg":"RS256","kid":"rsa-1"}`, "unexpected signature algorithm"},
		{"ALG, no alg", `{"ALG":"RS256","kid":"rsa-1"}`, "unexpected signature algorithm"},
		{"alg twice", `{"alg":"HS256","alg":"RS256","kid":"rsa-1"}`, "malformed header"},
		{"alg twice, escaped", `{"alg":"HS256","\u0061lg":"RS256","kid":"rsa-1"}`, "malformed header"},
		{"kid twice, escaped", `{"alg":"RS256","kid":"rsa-2","\u006bid":"rsa-1"}`, "malformed header"},
		{"header an array", `[{"alg":"RS256","kid":"rsa-1"}]`, "malformed header"},
		{"header a string", `"RS256"`, "malformed header"},
		{"header with trailing data", `{"alg":"RS256","kid":"rsa-1"}{"alg":"HS256"}`, "malformed header"},
		{"kid a number", `{"alg":"RS256","kid":1}`, "malformed header"},
	} {
		out = append(out, attack{name: h.name, raw: signJWS(t, "RS256", tk.rsa, h.hdr, base), cause: h.cause})
	}
	// The stored allow-list is exact: a case variant there does not enable
	// the real algorithm, and an empty list (a config never completed)
	// refuses everything rather than falling back to a default.
	out = append(out,
		attack{name: "allow-list rs256 does not allow RS256", raw: tokenFor(t, "RS256", baseClaims()), mod: func(c *Config) { c.AllowedAlgs = []string{"rs256"} }, cause: "unexpected signature algorithm"},
		attack{name: "empty allow-list refuses", raw: tokenFor(t, "RS256", baseClaims()), mod: func(c *Config) { c.AllowedAlgs = nil }, cause: "unexpected signature algorithm"},
		attack{name: "PS256 with the RS256-only key rsa-2", raw: signJWS(t, "PS256", tk.rsaAlso, `{"alg":"PS256","kid":"rsa-2"}`, base), cause: "no key with kid"},
		attack{name: "ES256 with the kid of an RSA key", raw: signJWS(t, "ES256", tk.p256, `{"alg":"ES256","kid":"rsa-1"}`, base), cause: "does not verify"},
		attack{name: "RS256 with the kid of an EC key", raw: signJWS(t, "RS256", tk.rsa, `{"alg":"RS256","kid":"ec-256"}`, base), cause: "no key with kid"},
		attack{name: "EdDSA with the kid of an RSA key", raw: signJWS(t, "EdDSA", tk.ed, `{"alg":"EdDSA","kid":"rsa-1"}`, base), cause: "does not verify"},
		attack{name: "ES512 signature by the P-256 key", raw: signJWS(t, "ES256", tk.p256, `{"alg":"ES512"}`, base), cause: "does not verify"},
	)
	runAttacks(t, out)
}

// TestAttackHeaderKeys: RFC 8725 §3.10 and RFC 7515 §4.1.2-4.1.6: a key
// the token brings (jwk, jku, x5u, x5c) is never used, nor fetched; crit
// is refused (RFC 7515 §4.1.11); a nested JWT or a JWE is not an ID token.
func TestAttackHeaderKeys(t *testing.T) {
	tk := tkeys()
	base := mustJSON(t, baseClaims())
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &tk.other.PublicKey, KeyID: "evil", Algorithm: "ES256"}}})
	}))
	defer evil.Close()
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: &tk.other.PublicKey, KeyID: "evil", Algorithm: "ES256"})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp.test"}, NotBefore: tNow.Add(-time.Hour), NotAfter: tNow.Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &tk.other.PublicKey, tk.other)
	if err != nil {
		t.Fatal(err)
	}
	x5c := base64.StdEncoding.EncodeToString(cert)
	var out []attack
	for _, kid := range []string{`,"kid":"evil"`, ``, `,"kid":"ec-256"`} {
		for name, extra := range map[string]string{
			"embedded jwk": `,"jwk":` + string(jwk),
			"jku":          `,"jku":"` + evil.URL + `"`,
			"x5u":          `,"x5u":"` + evil.URL + `"`,
			"x5c":          `,"x5c":["` + x5c + `"]`,
		} {
			out = append(out, attack{name: name + kid, raw: signJWS(t, "ES256", tk.other, `{"alg":"ES256"`+kid+extra+`}`, base), cause: "key"})
		}
	}
	ok := func(hdr string) string { return signJWS(t, "RS256", tk.rsa, hdr, base) }
	out = append(out,
		attack{name: "crit empty", raw: ok(`{"alg":"RS256","kid":"rsa-1","crit":[]}`), cause: "critical"},
		attack{name: "crit b64 false (RFC 7797)", raw: ok(`{"alg":"RS256","kid":"rsa-1","b64":false,"crit":["b64"]}`), cause: "critical"},
		attack{name: "crit a string", raw: ok(`{"alg":"RS256","kid":"rsa-1","crit":"exp"}`), cause: "critical"},
		// A JWE's five parts, and a signed JWE/JWT as the payload (cty):
		// the payload must be the claims themselves (OIDC Core §2).
		attack{name: "JWE compact (5 parts)", raw: b64s([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".a.b.c.d", cause: "malformed"},
		attack{name: "nested JWT as the payload (cty JWT)", raw: signJWS(t, "RS256", tk.rsa, `{"alg":"RS256","kid":"rsa-1","cty":"JWT"}`, `"`+tokenFor(t, "ES256", baseClaims())+`"`), cause: "malformed claims"},
	)
	runAttacks(t, out)
	if hits.Load() != 0 {
		t.Fatalf("a jku/x5u from a token was fetched %d times", hits.Load())
	}
}

// TestAttackSignatureEncoding: RFC 7518 §3.4 (ES: R||S of the curve's
// size, not DER), §3.3 (RS: the modulus' size), out-of-range r and s,
// RFC 8037 §3.1 (EdDSA), and the compact form's base64url (RFC 7515 §2,
// §7.1: no padding, url alphabet, canonical).
func TestAttackSignatureEncoding(t *testing.T) {
	tk := tkeys()
	base := mustJSON(t, baseClaims())
	// ECDSA signatures are random: sign until the signature holds a
	// character the standard alphabet writes differently, so that the
	// "standard alphabet" case below is a different string (a signature
	// without '-' or '_' reads the same in both alphabets).
	es := tokenFor(t, "ES256", baseClaims())
	for i := 0; i < 64 && !strings.ContainsAny(strings.Split(es, ".")[2], "-_"); i++ {
		es = tokenFor(t, "ES256", baseClaims())
	}
	p := strings.Split(es, ".")
	in := p[0] + "." + p[1]
	if !strings.ContainsAny(p[2], "-_") {
		t.Fatal("no ES256 signature with '-' or '_' in 64 tries")
	}
	sig, _ := base64.RawURLEncoding.DecodeString(p[2])
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	n := elliptic.P256().Params().N
	rs := func(r, s *big.Int) string {
		b := make([]byte, 64)
		r.FillBytes(b[:32])
		s.FillBytes(b[32:])
		return in + "." + b64s(b)
	}
	der, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	rsaTok := tokenFor(t, "RS256", baseClaims())
	rp := strings.Split(rsaTok, ".")
	rsig, _ := base64.RawURLEncoding.DecodeString(rp[2])
	flipLast := func(seg string) string {
		// The last character of an unpadded segment has spare low bits
		// (RFC 4648 §3.5): a non-canonical encoding of the same bytes.
		const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alpha, seg[len(seg)-1])
		return seg[:len(seg)-1] + string(alpha[i^1])
	}
	std := func(seg string) string {
		return strings.NewReplacer("-", "+", "_", "/").Replace(seg)
	}
	out := []attack{
		{name: "ES256 valid (control)", raw: es, accept: true},
		{name: "ES256 signature in DER", raw: in + "." + b64s(der), cause: "does not verify"},
		{name: "ES256 R||S with a leading zero byte", raw: in + "." + b64s(append([]byte{0}, sig...)), cause: "does not verify"},
		{name: "ES256 r = 0", raw: rs(big.NewInt(0), s), cause: "does not verify"},
		{name: "ES256 s = 0", raw: rs(r, big.NewInt(0)), cause: "does not verify"},
		{name: "ES256 r = s = 0", raw: in + "." + b64s(make([]byte, 64)), cause: "does not verify"},
		{name: "ES256 r = n", raw: rs(n, s), cause: "does not verify"},
		{name: "ES256 s = n", raw: rs(r, n), cause: "does not verify"},
		// High S (n - s) is the same signature's twin: ECDSA as specified
		// (and go-oidc) accepts it; it forges nothing (the claims are the
		// IdP's), and the nonce makes the token single-use anyway.
		{name: "ES256 high-S twin (malleable, not a forgery)", raw: rs(r, new(big.Int).Sub(n, s)), accept: true},
		{name: "ES256 empty signature", raw: in + ".", cause: "does not verify"},
		{name: "RS256 with a leading zero byte", raw: rp[0] + "." + rp[1] + "." + b64s(append([]byte{0}, rsig...)), cause: "does not verify"},
		{name: "RS256 signature + n (not reduced)", raw: rp[0] + "." + rp[1] + "." + b64s(new(big.Int).Add(new(big.Int).SetBytes(rsig), tk.rsa.N).Bytes()), cause: "does not verify"},
		{name: "RS256 signature 0", raw: rp[0] + "." + rp[1] + "." + b64s(make([]byte, 256)), cause: "does not verify"},
		{name: "RS256 signature 1", raw: rp[0] + "." + rp[1] + "." + b64s(append(make([]byte, 255), 1)), cause: "does not verify"},
		{name: "EdDSA signature 63 bytes", raw: func() string {
			q := strings.Split(tokenFor(t, "EdDSA", baseClaims()), ".")
			b, _ := base64.RawURLEncoding.DecodeString(q[2])
			return q[0] + "." + q[1] + "." + b64s(b[:63])
		}(), cause: "does not verify"},
		{name: "EdDSA S + L (non-canonical)", raw: func() string {
			q := strings.Split(tokenFor(t, "EdDSA", baseClaims()), ".")
			b, _ := base64.RawURLEncoding.DecodeString(q[2])
			l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
			sb := make([]byte, 32)
			for i := range 32 {
				sb[i] = b[63-i]
			}
			s := new(big.Int).Add(new(big.Int).SetBytes(sb), l)
			le := s.FillBytes(make([]byte, 32))
			for i := range 32 {
				b[32+i] = le[31-i]
			}
			return q[0] + "." + q[1] + "." + b64s(b)
		}(), cause: "does not verify"},
		{name: "PS256 with a zero-length salt", raw: func() string {
			in := b64s([]byte(`{"alg":"PS256","kid":"rsa-1"}`)) + "." + b64s([]byte(base))
			d := sha256.Sum256([]byte(in))
			sg, err := rsa.SignPSS(rand.Reader, tk.rsa, 5 /* crypto.SHA256 */, d[:], &rsa.PSSOptions{SaltLength: 0})
			if err != nil {
				t.Fatal(err)
			}
			return in + "." + b64s(sg)
		}(), cause: "does not verify"}, // RFC 7518 §3.5: salt as long as the hash (stricter than go-jose)
		// Compact form.
		{name: "padded signature", raw: es + "==", cause: "malformed signature"},
		{name: "padded header", raw: b64s([]byte(`{"alg":"ES256","kid":"ec-256"}`)) + "=." + p[1] + "." + p[2], cause: "header"},
		{name: "standard alphabet in the signature", raw: in + "." + std(p[2]), cause: ""},
		{name: "non-canonical last character of the signature", raw: in + "." + flipLast(p[2]), cause: "malformed signature"},
		{name: "leading space", raw: " " + es, cause: "whitespace"},
		{name: "trailing space", raw: es + " ", cause: "whitespace"},
		{name: "trailing newline", raw: es + "\n", cause: "malformed"},
		{name: "CRLF inside the signature", raw: in + "." + p[2][:10] + "\r\n" + p[2][10:], cause: "malformed"},
		{name: "newline inside the header", raw: p[0][:5] + "\n" + p[0][5:] + "." + p[1] + "." + p[2], cause: "malformed"},
		{name: "tab inside the payload", raw: p[0] + "." + p[1][:5] + "\t" + p[1][5:] + "." + p[2], cause: "malformed"},
		{name: "space inside the signature", raw: in + "." + p[2][:10] + " " + p[2][10:], cause: "malformed"},
		{name: "empty header", raw: "." + p[1] + "." + p[2], cause: "malformed header"},
		{name: "empty payload", raw: signJWS(t, "ES256", tk.p256, `{"alg":"ES256","kid":"ec-256"}`, ""), cause: "malformed claims"},
		{name: "extra dot at the end", raw: es + ".", cause: "malformed"},
		{name: "leading dot", raw: "." + es, cause: "malformed"},
		{name: "two dots in a row", raw: p[0] + ".." + p[1] + "." + p[2], cause: "malformed"},
		{name: "JSON serialization, one signature", raw: `{"payload":"` + p[1] + `","protected":"` + p[0] + `","signature":"` + p[2] + `"}`, cause: "malformed"},
		{name: "JSON serialization, two signatures", raw: `{"payload":"` + p[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"},{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`, cause: "malformed"},
	}
	runAttacks(t, out)
}

// TestAttackDuplicatesAndShapes: what the signature covers is what the
// claims say (RFC 7519 §7.2 step 3: duplicate names refused, so a
// verifier and a claim reader cannot disagree on first or last), and
// hostile shapes do not crash or hang.
func TestAttackDuplicatesAndShapes(t *testing.T) {
	base := mustJSON(t, baseClaims())
	body := base[1 : len(base)-1]
	hs := func(payload string) string { return tokenFor0(t, payload) }
	deep := strings.Repeat(`[`, 20000) + strings.Repeat(`]`, 20000)
	var out []attack
	for _, dup := range []string{`"sub":"admin"`, `"s\u0075b":"admin"`, `"iss":"https://evil.test"`, `"aud":"client-2"`,
		`"nonce":"other"`, `"exp":9999999999`, `"email":"root@example.com"`, `"groups":["admin"]`, `"tid":"x","tid":"y"`} {
		out = append(out,
			attack{name: "duplicate first: " + dup, raw: hs(`{` + dup + `,` + body + `}`), cause: "malformed claims"},
			attack{name: "duplicate last: " + dup, raw: hs(`{` + body + `,` + dup + `}`), cause: "malformed claims"})
	}
	out = append(out,
		attack{name: "nested duplicate", raw: hs(`{` + body + `,"x":{"a":1,"a":2}}`), cause: "malformed claims"},
		// RFC 7519 §4: claim names are case-sensitive. go-oidc decodes its
		// registered claims with encoding/json v1, which matches names
		// case-insensitively and lets the last one win: it reads sub
		// "admin" from "SUB". We read "sub", as the IdP meant.
		attack{name: "SUB beside sub is another claim", raw: hs(`{` + body + `,"SUB":"admin"}`), accept: true, readsOther: true},
		attack{name: "NONCE beside nonce is another claim", raw: hs(`{` + body + `,"NONCE":"x","Iss":"https://evil.test","AUD":"x"}`), accept: true, readsOther: true},
		attack{name: "Sub alone is not sub", raw: hs(strings.Replace(base, `"sub"`, `"Sub"`, 1)), cause: "no sub", readsOther: true},
		attack{name: "deep nesting", raw: hs(`{` + body + `,"x":` + deep + `}`), cause: "malformed claims"},
		attack{name: "trailing data after the claims", raw: hs(base + `{"sub":"admin"}`), cause: "malformed claims"},
		attack{name: "claims with a BOM", raw: hs("\ufeff" + base), cause: "malformed claims"},
		attack{name: "lone surrogate escape", raw: hs(`{` + body + `,"x":"\ud800"}`), cause: "malformed claims"},
		attack{name: "huge header", raw: b64s([]byte(`{"alg":"HS256","x":"`+strings.Repeat("a", 1<<20)+`"}`)) + ".e30.AA", cause: "signature"},
		attack{name: "number beyond float64", raw: hs(`{` + body + `,"x":1e400}`), cause: "malformed claims"},
	)
	runAttacks(t, out)
}

// tokenFor0 signs a raw payload with HS256 and the client secret (allowed
// in testConn), so any byte sequence can be a validly signed claim set.
func tokenFor0(t testing.TB, payload string) string {
	return signJWS(t, "HS256", []byte(tSecret), `{"alg":"HS256","typ":"JWT"}`, payload)
}

// TestAttackClaims: OIDC Core §3.1.3.7 steps 2-11 and RFC 7519 §4.1 with
// the values an attacker or a sloppy IdP would try; only the cases the
// rules table (TestIDTokenRules) does not already hold.
func TestAttackClaims(t *testing.T) {
	edit := func(f func(c map[string]any)) string { c := baseClaims(); f(c); return tokenFor(t, "ES256", c) }
	set := func(k string, v any) string { return edit(func(c map[string]any) { c[k] = v }) }
	entra := &Metadata{Issuer: "https://login.test/{tenantid}/v2.0", JWKSURI: tJWKSURI}
	tenant := func(iss string, tid any) string {
		return edit(func(c map[string]any) { c["iss"] = iss; c["tid"] = tid })
	}
	out := []attack{
		// iss (step 2): exact string comparison.
		{name: "iss upper-case host", raw: set("iss", "https://IDP.test"), cause: "different provider"},
		{name: "iss upper-case scheme", raw: set("iss", "HTTPS://idp.test"), cause: "different provider"},
		{name: "iss with a port", raw: set("iss", "https://idp.test:443"), cause: "different provider"},
		{name: "iss with a path", raw: set("iss", "https://idp.test/x"), cause: "different provider"},
		{name: "iss with whitespace", raw: set("iss", tIssuer+" "), cause: "different provider"},
		{name: "iss with a NUL", raw: set("iss", tIssuer+"\x00"), cause: "different provider"},
		{name: "iss an array", raw: set("iss", []string{tIssuer}), cause: "iss"},
		{name: "iss null", raw: set("iss", nil), cause: "iss"},
		{name: "iss empty", raw: set("iss", ""), cause: "different provider"},
		{name: "issuer configured with a slash, token without", md: &Metadata{Issuer: tIssuer + "/", JWKSURI: tJWKSURI}, raw: set("iss", tIssuer), cause: "different provider"},
		// Entra's template (step 2 with tid).
		{name: "template: literal template as iss", md: entra, raw: tenant("https://login.test/{tenantid}/v2.0", "{tenantid}"), accept: true},
		{name: "template: tid empty", md: entra, raw: tenant("https://login.test//v2.0", ""), cause: "tid"},
		{name: "template: tid missing", md: entra, raw: set("iss", "https://login.test/x/v2.0"), cause: "tid"},
		{name: "template: tid a number", md: entra, raw: tenant("https://login.test/1/v2.0", 1), cause: "tid"},
		{name: "template: tid with ?", md: entra, raw: tenant("https://login.test/a?/v2.0", "a?"), cause: "tid"},
		{name: "template: tid with #", md: entra, raw: tenant("https://login.test/a#/v2.0", "a#"), cause: "tid"},
		{name: "template: iss of the tenant, tid another", md: entra, raw: tenant("https://login.test/"+tTenantID+"/v2.0", tTenantID+"x"), cause: "issued by"},
		{name: "template: iss on another host", md: entra, raw: tenant("https://evil.test/"+tTenantID+"/v2.0", tTenantID), cause: "issued by"},
		{name: "template: tid allowed, iss another tenant", md: entra, mod: func(c *Config) { c.AllowedTenantIDs = []string{tTenantID} },
			raw: tenant("https://login.test/other/v2.0", tTenantID), cause: "issued by"},
		{name: "template: tid not allowed", md: entra, mod: func(c *Config) { c.AllowedTenantIDs = []string{tTenantID} },
			raw: tenant("https://login.test/other/v2.0", "other"), cause: "allowed_tenant_ids"},
		{name: "template: tid allowed", md: entra, mod: func(c *Config) { c.AllowedTenantIDs = []string{tTenantID} },
			raw: tenant("https://login.test/"+tTenantID+"/v2.0", tTenantID), accept: true},
		// aud and azp (steps 3-5).
		{name: "aud case variant", raw: set("aud", "CLIENT-1"), cause: "expected audience"},
		{name: "aud our id twice, no azp", raw: set("aud", []string{tClient, tClient}), cause: "no azp"},
		{name: "aud our id twice, azp", raw: edit(func(c map[string]any) { c["aud"] = []string{tClient, tClient}; c["azp"] = tClient }), accept: true},
		{name: "aud only the trusted one", raw: edit(func(c map[string]any) { c["aud"] = tTrusted; c["azp"] = tClient }), cause: "expected audience"},
		{name: "aud an object", raw: set("aud", map[string]any{tClient: true}), cause: "aud"},
		{name: "aud array with null", raw: set("aud", []any{tClient, nil}), cause: "aud"},
		{name: "aud nested array", raw: set("aud", []any{[]any{tClient}}), cause: "aud"},
		{name: "aud null", raw: set("aud", nil), cause: "audience"},
		{name: "azp null", raw: set("azp", nil), cause: "azp"},
		{name: "azp empty", raw: set("azp", ""), cause: "azp"},
		{name: "azp an array of us", raw: set("azp", []string{tClient}), cause: "azp"},
		{name: "azp the trusted audience", raw: edit(func(c map[string]any) { c["aud"] = []string{tClient, tTrusted}; c["azp"] = tTrusted }), cause: "azp"},
		{name: "trusted audience equal to another tenant's client", mod: func(c *Config) { c.TrustedAudiences = nil },
			raw: edit(func(c map[string]any) { c["aud"] = []string{tClient, tTrusted}; c["azp"] = tClient }), cause: "untrusted audience"},
		// exp, iat, nbf (steps 9-10, RFC 7519 §4.1.4-4.1.6).
		{name: "exp at the skew's edge", raw: set("exp", tNow.Add(-ClockSkew).Unix()), accept: true},
		{name: "exp 0", raw: set("exp", 0), cause: "expired"},
		{name: "exp null", raw: set("exp", nil), cause: "exp"},
		{name: "exp true", raw: set("exp", true), cause: "exp"},
		{name: "exp an array", raw: set("exp", []int64{tNow.Add(time.Hour).Unix()}), cause: "exp"},
		{name: "exp 2^53", raw: set("exp", float64(1<<53)), cause: "exp"},
		{name: "exp 2^63 (int64 overflow)", raw: set("exp", float64(1<<63)), cause: "exp"},
		{name: "exp in milliseconds (far future) still within float range", raw: set("exp", tNow.Add(time.Hour).UnixMilli()), accept: true},
		{name: "exp -0.5", raw: set("exp", -0.5), cause: "exp"},
		{name: "iat 0", raw: set("iat", 0), accept: true}, // RFC 7519 §4.1.6 sets no lower bound; go-oidc neither
		{name: "iat negative", raw: set("iat", -1), cause: "iat"},
		{name: "iat null", raw: set("iat", nil), cause: "iat"},
		{name: "iat huge", raw: set("iat", 1e300), cause: "iat"},
		{name: "iat at the skew's edge", raw: set("iat", tNow.Add(ClockSkew).Unix()), accept: true},
		{name: "nbf a string", raw: set("nbf", "0"), cause: "nbf"},
		{name: "nbf negative", raw: set("nbf", -5), cause: "nbf"},
		{name: "nbf huge", raw: set("nbf", 1e300), cause: "nbf"},
		{name: "nbf null", raw: set("nbf", nil), cause: "nbf"},
		{name: "nbf in the past", raw: set("nbf", tNow.Add(-time.Hour).Unix()), accept: true},
		// nonce (step 11) and sub.
		{name: "nonce empty, request had one", raw: set("nonce", ""), cause: "nonce"},
		{name: "nonce case variant", raw: set("nonce", strings.ToUpper(tNonce)), cause: "nonce"},
		{name: "nonce with a trailing space", raw: set("nonce", tNonce+" "), cause: "nonce"},
		{name: "nonce prefix", raw: set("nonce", tNonce[:len(tNonce)-1]), cause: "nonce"},
		{name: "nonce an array", raw: set("nonce", []string{tNonce}), cause: "nonce"},
		{name: "nonce null", raw: set("nonce", nil), cause: "nonce"},
		{name: "sub empty", raw: set("sub", ""), cause: "no sub"},
		{name: "sub null", raw: set("sub", nil), cause: "sub"},
		{name: "sub an array", raw: set("sub", []string{"user-1"}), cause: "sub"},
		{name: "sub an object", raw: set("sub", map[string]any{"id": "user-1"}), cause: "sub"},
		{name: "at_hash a number", raw: set("at_hash", 1), cause: "at_hash"},
	}
	runAttacks(t, out)
}

// steppedClock is a clock tests move by hand.
type steppedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppedClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *steppedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// jwksServer serves a key set the test edits; it counts requests.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   string
	status int
	hits   int
}

func newJWKSServer(t *testing.T, keys ...any) *jwksServer {
	s := &jwksServer{status: 200}
	s.setKeys(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		w.Write([]byte(s.body))
	}))
	t.Cleanup(s.Close)
	return s
}

// setKeys publishes keys: each a jose.JSONWebKey or raw JSON (string).
func (s *jwksServer) setKeys(t testing.TB, keys ...any) {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			parts = append(parts, k)
		default:
			parts = append(parts, mustJSON(t, k))
		}
	}
	s.mu.Lock()
	s.body = `{"keys":[` + strings.Join(parts, ",") + `]}`
	s.mu.Unlock()
}

func (s *jwksServer) set(status int, body string) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func (s *jwksServer) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.hits }

// remoteConn is a connection whose keys come from srv over HTTP (the real
// fetch, parse and cache), with a clock the test moves.
func remoteConn(t *testing.T, srv *jwksServer) (*conn, *Metadata, *steppedClock) {
	md := &Metadata{Issuer: tIssuer, JWKSURI: srv.URL + "/jwks"}
	k := testConn(t, nil, md)
	ks := k.t.cache.keySet(md.JWKSURI)
	ks.keys, ks.fetched, ks.tried = nil, time.Time{}, time.Time{}
	clk := &steppedClock{now: tNow}
	k.env.Clock = clk
	k.env.HTTPClient = outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 5 * time.Second})
	return k, md, clk
}

func verifyErr(k *conn, md *Metadata, raw string) error {
	_, _, err := k.verify(context.Background(), md, raw, tNonce)
	return err
}

// jwkJSON is a public JWK as a map, for editing its members.
func jwkMap(t testing.TB, key any, kid, alg, use string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use})), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAttackKeySet: what a JWKS may hold (RFC 7517 §4.2-4.4, RFC 7518
// §3.3, §6.2.1), and how it is fetched: an encryption key, a key for
// another algorithm, a symmetric or private key, a point off the curve,
// a weak RSA key are never verification keys; a JWKS that cannot be read
// refuses the login (fail closed).
func TestAttackKeySet(t *testing.T) {
	tk := tkeys()
	base := mustJSON(t, baseClaims())
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := jwkMap(t, &tk.other.PublicKey, "k", "ES256", "sig")
	offCurve["y"] = b64s(make([]byte, 32))
	e1 := jwkMap(t, &tk.rsa.PublicKey, "k", "RS256", "sig")
	e1["e"] = "AQ" // e = 1: every "signature" is its own message
	octKey := map[string]any{"kty": "oct", "kid": "k", "k": b64s([]byte(tSecret)), "alg": "HS256"}
	priv := jwkMap(t, tk.rsa, "k", "RS256", "sig")
	for _, tc := range []struct {
		name  string
		key   any
		token string
	}{
		{"use enc", jose.JSONWebKey{Key: &tk.rsa.PublicKey, KeyID: "k", Use: "enc"}, signJWS(t, "RS256", tk.rsa, `{"alg":"RS256","kid":"k"}`, base)},
		{"alg RSA-OAEP", jose.JSONWebKey{Key: &tk.rsa.PublicKey, KeyID: "k", Algorithm: "RSA-OAEP"}, signJWS(t, "RS256", tk.rsa, `{"alg":"RS256","kid":"k"}`, base)},
		{"alg RS256, token PS256", jose.JSONWebKey{Key: &tk.rsa.PublicKey, KeyID: "k", Algorithm: "RS256"}, signJWS(t, "PS256", tk.rsa, `{"alg":"PS256","kid":"k"}`, base)},
		{"alg ES384 on a P-256 key", jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "k", Algorithm: "ES384"}, signJWS(t, "ES256", tk.p256, `{"alg":"ES256","kid":"k"}`, base)},
		{"oct key (HS256 via the JWKS)", octKey, signJWS(t, "HS256", []byte("not-the-secret-0123456789abcdefghij"), `{"alg":"HS256","kid":"k"}`, base)},
		{"oct key, RS256 header", octKey, signJWS(t, "HS256", []byte(tSecret), `{"alg":"RS256","kid":"k"}`, base)},
		{"point off the curve", offCurve, signJWS(t, "ES256", tk.other, `{"alg":"ES256","kid":"k"}`, base)},
		{"RSA e=1", e1, func() string {
			// With e = 1 the PKCS#1 v1.5 encoded digest is a valid signature.
			in := b64s([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + b64s([]byte(base))
			d := sha256.Sum256([]byte(in))
			prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
			em := make([]byte, 256)
			em[1] = 1
			for i := 2; i < 256-len(prefix)-32-1; i++ {
				em[i] = 0xff
			}
			copy(em[256-len(prefix)-32:], prefix)
			copy(em[256-32:], d[:])
			return in + "." + b64s(em)
		}()},
		// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used".
		{"RSA 1024 bits", jose.JSONWebKey{Key: &weak.PublicKey, KeyID: "k", Use: "sig"}, signJWS(t, "RS256", weak, `{"alg":"RS256","kid":"k"}`, base)},
		{"private key published", priv, signJWS(t, "RS256", tk.rsa, `{"alg":"RS256","kid":"k"}`, base)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, tc.key)
			k, md, _ := remoteConn(t, srv)
			err := verifyErr(k, md, tc.token)
			if err == nil {
				t.Fatal("accepted a token verified by a key that is not a signature key of its algorithm")
			}
		})
	}

	t.Run("JWKS unreadable: fail closed", func(t *testing.T) {
		for name, resp := range map[string]struct {
			status int
			body   string
		}{
			"500": {500, `{"keys":[]}`}, "not JSON": {200, `<html>`}, "no keys": {200, `{}`}, "empty keys": {200, `{"keys":[]}`},
			"keys null": {200, `{"keys":null}`}, "keys an object": {200, `{"keys":{}}`},
		} {
			srv := newJWKSServer(t)
			srv.set(resp.status, resp.body)
			k, md, _ := remoteConn(t, srv)
			if err := verifyErr(k, md, tokenFor(t, "ES256", baseClaims())); err == nil {
				t.Fatalf("%s: accepted", name)
			}
		}
	})

	t.Run("JWKS down at first use, then up", func(t *testing.T) {
		srv := newJWKSServer(t, jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"})
		srv.set(503, "down")
		k, md, clk := remoteConn(t, srv)
		tok := tokenFor(t, "ES256", baseClaims())
		for range 20 {
			if err := verifyErr(k, md, tok); err == nil {
				t.Fatal("accepted without keys")
			}
		}
		if srv.count() != 1 {
			t.Fatalf("a down JWKS was fetched %d times within KeysMinInterval", srv.count())
		}
		srv.setKeys(t, jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"})
		srv.set(200, srv.body)
		clk.Add(KeysMinInterval)
		if err := verifyErr(k, md, tok); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})

	t.Run("unknown kid flood: one fetch per KeysMinInterval", func(t *testing.T) {
		srv := newJWKSServer(t, jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"})
		k, md, clk := remoteConn(t, srv)
		if err := verifyErr(k, md, tokenFor(t, "ES256", baseClaims())); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hdr := fmt.Sprintf(`{"alg":"ES256","kid":"forged-%d"}`, i)
				if verifyErr(k, md, signJWS(t, "ES256", tk.other, hdr, base)) == nil {
					t.Error("forged kid accepted")
				}
			}()
		}
		wg.Wait()
		if srv.count() > 2 {
			t.Fatalf("200 unknown kids at one instant fetched the JWKS %d times", srv.count())
		}
		clk.Add(KeysMinInterval)
		for i := range 50 {
			verifyErr(k, md, signJWS(t, "ES256", tk.other, fmt.Sprintf(`{"alg":"ES256","kid":"again-%d"}`, i), base))
		}
		if srv.count() > 3 {
			t.Fatalf("JWKS fetched %d times", srv.count())
		}
	})

	t.Run("withdrawn key stops verifying after KeysTTL", func(t *testing.T) {
		old := jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"}
		srv := newJWKSServer(t, old)
		k, md, clk := remoteConn(t, srv)
		tok := tokenFor(t, "ES256", baseClaims())
		if err := verifyErr(k, md, tok); err != nil {
			t.Fatal(err)
		}
		srv.setKeys(t, jose.JSONWebKey{Key: &tk.p384.PublicKey, KeyID: "ec-384", Algorithm: "ES384"})
		clk.Add(KeysTTL)
		if err := verifyErr(k, md, signAt(t, clk.Now())); err == nil {
			t.Fatal("a key withdrawn from the JWKS still verifies after KeysTTL")
		}
	})

	t.Run("withdrawn key, JWKS unreachable: stale keys are bounded", func(t *testing.T) {
		srv := newJWKSServer(t, jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"})
		k, md, clk := remoteConn(t, srv)
		if err := verifyErr(k, md, tokenFor(t, "ES256", baseClaims())); err != nil {
			t.Fatal(err)
		}
		srv.set(503, "down")
		// An outage shorter than keysStale keeps logins working.
		clk.Add(KeysTTL + time.Minute)
		if err := verifyErr(k, md, signAt(t, clk.Now())); err != nil {
			t.Fatalf("cached keys during a short outage: %v", err)
		}
		// Past keysStale without a successful fetch, the cached keys
		// (which may hold one the IdP withdrew) no longer verify.
		clk.Add(keysStale)
		if err := verifyErr(k, md, signAt(t, clk.Now())); err == nil {
			t.Fatal("keys fetched longer than keysStale ago still verify while the JWKS is unreachable")
		}
	})

	t.Run("padded key set: a kid-less token is checked against a few keys only", func(t *testing.T) {
		// OIDC Core §10.1. 5000 P-256 keys (760 KB, under the outbound
		// 2 MiB cap) cost ~260 ms of CPU per forged kid-less token when
		// every key was tried.
		var keys []any
		for i := range 200 {
			keys = append(keys, jose.JSONWebKey{Key: &tk.other.PublicKey, KeyID: fmt.Sprintf("k%d", i%2), Algorithm: "ES256"})
		}
		keys = append(keys, jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"})
		srv := newJWKSServer(t, keys...)
		k, md, _ := remoteConn(t, srv)
		noKid := signJWS(t, "ES256", tk.p256, `{"alg":"ES256"}`, base)
		if err := verifyErr(k, md, noKid); err == nil || !strings.Contains(err.Error(), "at most") {
			t.Fatalf("kid-less token against 201 keys: %v", err)
		}
		if err := verifyErr(k, md, signJWS(t, "ES256", tk.other, `{"alg":"ES256","kid":"k1"}`, base)); err == nil || !strings.Contains(err.Error(), "at most") {
			t.Fatalf("a kid shared by 100 keys: %v", err)
		}
		// The token that names its key still verifies.
		if err := verifyErr(k, md, signJWS(t, "ES256", tk.p256, `{"alg":"ES256","kid":"ec-256"}`, base)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("JWKS redirect is followed under the outbound policy only", func(t *testing.T) {
		target := newJWKSServer(t, jose.JSONWebKey{Key: &tk.p256.PublicKey, KeyID: "ec-256", Algorithm: "ES256"})
		redir := httptest.NewServer(http.RedirectHandler(target.URL+"/jwks", http.StatusFound))
		defer redir.Close()
		md := &Metadata{Issuer: tIssuer, JWKSURI: redir.URL + "/jwks"}
		k := testConn(t, nil, md)
		ks := k.t.cache.keySet(md.JWKSURI)
		ks.keys, ks.fetched, ks.tried = nil, time.Time{}, time.Time{}
		// Strict policy (no loopback): the redirect's target is refused
		// like any other destination; fail closed.
		k.env.HTTPClient = outbound.NewClient(outbound.Policy{})
		if err := verifyErr(k, md, tokenFor(t, "ES256", baseClaims())); err == nil {
			t.Fatal("accepted with keys from a refused destination")
		}
		if target.count() != 0 {
			t.Fatal("the redirect target was reached under a policy that refuses it")
		}
	})
}

// signAt is an ES256 token with the base claims issued at now.
func signAt(t testing.TB, now time.Time) string {
	c := baseClaims()
	c["iat"], c["exp"] = now.Unix(), now.Add(5*time.Minute).Unix()
	return tokenFor(t, "ES256", c)
}

// callbackConn configures a connection against an oidctest provider and
// returns a login through Begin, the provider and Finish (the real
// callback path: code exchange, ID token, at_hash, userinfo, mapping).
// login(true) is a forced login (prompt=login) begun at tNow.
func callbackConn(t *testing.T, in map[string]any) (*oidctest.Provider, func(force ...bool) (*gatehouse.Identity, error)) {
	clk := &steppedClock{now: tNow}
	const sec = "review-secret-0123456789abcdefghijklmnop"
	idp := oidctest.New(clk, tClient, sec)
	t.Cleanup(idp.Close)
	env := connector.Env{PublicURL: "https://gatehouse.test", Clock: clk,
		HTTPClient: outbound.NewClient(outbound.Policy{AllowLoopback: true, Timeout: 5 * time.Second})}
	fields := map[string]any{"issuer": idp.Issuer, "client_id": tClient, "client_secret": sec}
	for k, v := range in {
		fields[k] = v
	}
	c, _, err := oidctest.Configure(Type(), env, &gatehouse.Connection{ID: "con_r", TenantID: "ten_r"}, nil, fields)
	if err != nil {
		t.Fatal(err)
	}
	return idp, func(force ...bool) (*gatehouse.Identity, error) {
		flow := &connector.Flow{ID: "flw", CreatedAt: tNow, ForceLogin: len(force) > 0 && force[0]}
		act, err := c.Begin(context.Background(), flow)
		if err != nil {
			t.Fatal(err)
		}
		cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Get(act.RedirectURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return c.Finish(context.Background(), flow, httptest.NewRequest("GET", resp.Header.Get("Location"), nil))
	}
}

// TestAttackCallback: through the callback (Finish): at_hash binds the
// access token (OIDC Core §3.1.3.8), userinfo never overrides what the ID
// token says (§5.3.2: the ID token's claims are the signed ones), and
// what email_verified values the identity carries to provisioning.
func TestAttackCallback(t *testing.T) {
	t.Run("at_hash of another access token", func(t *testing.T) {
		idp, login := callbackConn(t, nil)
		idp.SetNext(oidctest.Forge{Claims: func(c map[string]any) { c["at_hash"] = atHashOf(t, "RS256", "some-other-token") }})
		if _, err := login(); err == nil || !strings.Contains(err.Error(), "at_hash") {
			t.Fatalf("at_hash mismatch: %v", err)
		}
	})
	t.Run("at_hash empty string is no at_hash", func(t *testing.T) {
		// §3.1.3.8: at_hash is optional in the code flow; "" is absent.
		idp, login := callbackConn(t, nil)
		idp.SetNext(oidctest.Forge{Claims: func(c map[string]any) { c["at_hash"] = "" }})
		if _, err := login(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("at_hash not a string", func(t *testing.T) {
		idp, login := callbackConn(t, nil)
		idp.SetNext(oidctest.Forge{Claims: func(c map[string]any) { c["at_hash"] = true }})
		if _, err := login(); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("userinfo cannot turn email_verified or email", func(t *testing.T) {
		idp, login := callbackConn(t, map[string]any{"userinfo": "always"})
		idp.Do(func(p *oidctest.Provider) {
			p.Claims["email_verified"] = false
			p.UserInfoClaims = map[string]any{"sub": "user-1", "email": "root@example.com", "email_verified": true}
		})
		id, err := login()
		if err != nil {
			t.Fatal(err)
		}
		if id.Email != "ada@example.com" || id.EmailVerified == nil || *id.EmailVerified {
			t.Fatalf("userinfo overrode the ID token: email %q verified %v", id.Email, id.EmailVerified)
		}
	})
	t.Run("userinfo cannot replace iss or aud", func(t *testing.T) {
		idp, login := callbackConn(t, map[string]any{"userinfo": "always", "trusted_audiences": []string{"x"}})
		idp.Do(func(p *oidctest.Provider) {
			p.UserInfoClaims = map[string]any{"sub": "user-1", "aud": "x", "iss": "https://evil.test", "nonce": "n"}
		})
		id, err := login()
		if err != nil {
			t.Fatal(err)
		}
		if id.Issuer != idp.Issuer || id.Raw["iss"] != idp.Issuer || id.Raw["aud"] != tClient {
			t.Fatalf("userinfo replaced registered claims: %v", id.Raw)
		}
	})
	// OIDC Core §3.1.2.1, §3.1.3.7 step 13: a forced login (an app's
	// prompt=login or max_age) answered from the IdP's session, told by an
	// auth_time older than the login, is refused.
	for _, tc := range []struct {
		name   string
		force  bool
		at     any // auth_time; nil leaves it out
		accept bool
	}{
		{"forced, auth_time now", true, tNow.Unix(), true},
		{"forced, auth_time within the skew", true, tNow.Add(-ClockSkew).Unix(), true},
		{"forced, auth_time an hour old", true, tNow.Add(-time.Hour).Unix(), false},
		{"forced, auth_time a string", true, "0", false},
		{"forced, no auth_time", true, nil, true},
		{"not forced, auth_time an hour old", false, tNow.Add(-time.Hour).Unix(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idp, login := callbackConn(t, nil)
			if tc.at != nil {
				idp.Do(func(p *oidctest.Provider) { p.Claims["auth_time"] = tc.at })
			}
			_, err := login(tc.force)
			if (err == nil) != tc.accept {
				t.Fatalf("err %v, want accept=%v", err, tc.accept)
			}
			if err != nil && !strings.Contains(err.Error(), "auth_time") {
				t.Fatalf("cause: %v", err)
			}
		})
	}
	// What provisioning is told: email_verified is a JSON boolean (OIDC
	// Core §5.1); the string forms "true"/"false" (Cognito, some Okta
	// custom claims) are read too; anything else is "not said" (nil),
	// which never links an existing account by email.
	for _, tc := range []struct {
		v    any
		want *bool
	}{
		{true, ptr(true)}, {false, ptr(false)}, {"true", ptr(true)}, {"false", ptr(false)},
		{"yes", nil}, {1, nil}, {"1", nil}, {map[string]any{}, nil}, {nil, nil},
	} {
		t.Run(fmt.Sprintf("email_verified %#v", tc.v), func(t *testing.T) {
			idp, login := callbackConn(t, map[string]any{"userinfo": "never"})
			idp.Do(func(p *oidctest.Provider) { p.Claims["email_verified"] = tc.v })
			id, err := login()
			if err != nil {
				t.Fatal(err)
			}
			if (id.EmailVerified == nil) != (tc.want == nil) || (tc.want != nil && *id.EmailVerified != *tc.want) {
				t.Fatalf("EmailVerified %v, want %v", id.EmailVerified, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzIDTokenSignedClaims reaches what FuzzIDTokenDifferential cannot:
// the claim rules behind a valid signature. Every input is a header and
// a claim set, signed with HS256 and the client secret (allowed in
// testConn), so the fuzzer explores the JSON and the claims themselves.
// Properties: no panic; what we accept, go-oidc accepts with the same
// claims (unless a name differs from a registered one only by case:
// go-oidc's encoding/json v1 matches names case-insensitively, RFC 7519
// §4 says they are case-sensitive); and the registered claims we return
// are exactly the map's "iss", "sub", "aud", "nonce".
//
//	go test ./connector/oidc -run '^$' -fuzz FuzzIDTokenSignedClaims -fuzztime 60s
func FuzzIDTokenSignedClaims(f *testing.F) {
	base := mustJSON(f, baseClaims())
	f.Add(`{"alg":"HS256"}`, base)
	f.Add(`{"alg":"HS256","typ":"JWT","kid":"x"}`, base[:len(base)-1]+`,"aud":["client-1","api://trusted"],"azp":"client-1"}`)
	f.Add(`{"alg":"HS256","crit":null}`, base[:len(base)-1]+`,"SUB":"admin"}`)
	f.Add(`{"alg":"HS256"}`, base[:len(base)-1]+`,"nbf":1796018400.5,"tid":"t"}`)
	md := testMetadata()
	k := testConn(f, nil, md)
	registered := []string{"iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "azp", "at_hash"}
	f.Fuzz(func(t *testing.T, header, payload string) {
		raw := signJWS(t, "HS256", []byte(tSecret), header, payload)
		idt, claims, err := k.verify(context.Background(), md, raw, tNonce)
		if err != nil {
			return
		}
		if s, _ := claims["sub"].(string); s != idt.Subject || s == "" {
			t.Fatalf("sub %q, map %v", idt.Subject, claims["sub"])
		}
		if claims["iss"] != tIssuer || idt.Issuer != tIssuer || claims["nonce"] != tNonce || !slicesContains(idt.Audience, tClient) {
			t.Fatalf("accepted foreign registered claims: %v", claims)
		}
		for name := range claims {
			for _, r := range registered {
				if name != r && strings.EqualFold(name, r) {
					return // the oracle reads this name as r (see above)
				}
			}
		}
		if _, _, oerr := k.verifyGoOIDC(context.Background(), md, raw, tNonce); oerr != nil {
			t.Fatalf("we accept what go-oidc refuses (%v):\nheader  %s\npayload %s", oerr, header, payload)
		}
		both(t, k, md, raw, tNonce)
	})
}

func slicesContains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}
