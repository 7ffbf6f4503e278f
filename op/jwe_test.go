package op

import (
	"bytes"
	"crypto/rand"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/go-jose/go-jose/v4"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// setClock is a clock that says what the test sets.
type setClock struct{ t time.Time }

func (c *setClock) Now() time.Time { return c.t }

func tokenKid(n int64) string { return tokenKidPrefix + strconv.FormatInt(n, 10) }

// joseSeal is a token as go-jose (zitadel's Crypto) writes it: msg under
// key with kid (none when empty) in the protected header.
func joseSeal(t testing.TB, key []byte, kid string, opts *jose.EncrypterOptions, msg string) string {
	t.Helper()
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.A256GCMKW, Key: key, KeyID: kid}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := enc.Encrypt([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenKeyPeriods: the key-wrapping key of an access token is the key
// of the period its kid names (RFC 7516 section 4.1.6), only a period in
// the window (back to an access token's longest lifetime, one ahead for
// clock skew), or the token key itself for a token without a kid (issued
// before the periods). Anything else is refused.
func TestTokenKeyPeriods(t *testing.T) {
	var key, other [32]byte
	_, _ = rand.Read(key[:])
	_, _ = rand.Read(other[:])
	const day = 24 * time.Hour
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := &setClock{t0}
	s, err := newTokenSealer(key, clock, DefaultAccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	n := periodOf(t0)
	const msg = "oat_1:usr_1"
	sealAt := func(at time.Time) string {
		clock.t = at
		defer func() { clock.t = t0 }()
		tok, err := s.seal(msg)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := tokenPeriodKey(key, n)
	digits := strconv.FormatInt(n, 10)
	for _, tc := range []struct {
		name string
		tok  string
		ok   bool
	}{
		{"sealed now", sealAt(t0), true},
		{"sealed in the previous period", sealAt(t0.Add(-day)), true},
		{"sealed a second before midnight", sealAt(time.Date(2026, 11, 29, 23, 59, 59, 0, time.UTC)), true},
		{"sealed 90 days ago (an app's longest access token lifetime)", sealAt(t0.Add(-90 * day)), true},
		{"sealed in the next period (a replica's clock ahead)", sealAt(t0.Add(day)), true},
		{"sealed two periods ahead", sealAt(t0.Add(2 * day)), false},
		{"sealed 92 days ago", sealAt(t0.Add(-92 * day)), false},
		{"kid of now as go-jose writes it", joseSeal(t, now, tokenKid(n), nil, msg), true},
		{"kid far in the past, its own key", joseSeal(t, tokenPeriodKey(key, n-1000), tokenKid(n-1000), nil, msg), false},
		{"kid far in the future, its own key", joseSeal(t, tokenPeriodKey(key, n+1000), tokenKid(n+1000), nil, msg), false},
		{"kid before the epoch, its own key", joseSeal(t, tokenPeriodKey(key, -1), tokenKid(-1), nil, msg), false},
		{"no kid, the token key (issued before the periods)", joseSeal(t, key[:], "", nil, msg), true},
		{"no kid, the period's key", joseSeal(t, now, "", nil, msg), false},
		{"no kid, another root's token key", joseSeal(t, other[:], "", nil, msg), false},
		{"kid of now, the token key itself", joseSeal(t, key[:], tokenKid(n), nil, msg), false},
		{"kid of now, another root's period key", joseSeal(t, tokenPeriodKey(other, n), tokenKid(n), nil, msg), false},
		{"kid of the previous period, the current key", joseSeal(t, now, tokenKid(n-1), nil, msg), false},
		// Only the canonical kid names a period.
		{"kid with a leading zero", joseSeal(t, now, "d0"+digits, nil, msg), false},
		{"kid with a sign", joseSeal(t, now, "d+"+digits, nil, msg), false},
		{"kid in capitals", joseSeal(t, now, "D"+digits, nil, msg), false},
		{"kid without the prefix", joseSeal(t, now, digits, nil, msg), false},
		{"kid with a space", joseSeal(t, now, tokenKid(n)+" ", nil, msg), false},
		{"kid of only the prefix", joseSeal(t, now, "d", nil, msg), false},
		// RFC 7516 section 4.1.13: a crit extension not understood fails;
		// so does any header field the sealer does not write.
		{"crit header", joseSeal(t, now, tokenKid(n), (&jose.EncrypterOptions{}).WithHeader("crit", []string{"x"}).WithHeader("x", 1), msg), false},
		{"compressed (zip)", joseSeal(t, now, tokenKid(n), &jose.EncrypterOptions{Compression: jose.DEFLATE}, msg), false},
	} {
		got, err := s.Decrypt(tc.tok)
		if tc.ok && (err != nil || got != msg) {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: decrypted", tc.name)
		}
	}
	// Kids out of the window derived no key.
	for _, p := range []int64{n - 1000, n + 1000, -1} {
		if s.keys[p] != nil {
			t.Errorf("period %d cached", p)
		}
	}
}

// TestTokenKeyChangesWithPeriod: each period wraps under a key of its own,
// the switch is at midnight UTC, and the seal path derives it once per
// period (cached), not per token.
func TestTokenKeyChangesWithPeriod(t *testing.T) {
	var key [32]byte
	_, _ = rand.Read(key[:])
	if bytes.Equal(tokenPeriodKey(key, 20422), tokenPeriodKey(key, 20423)) || bytes.Equal(tokenPeriodKey(key, 20422), key[:]) {
		t.Fatal("two periods, one key")
	}
	clock := &setClock{time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC)}
	s, err := newTokenSealer(key, clock, DefaultAccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	kidOf := func(tok string) string {
		jwe, err := jose.ParseEncryptedCompact(tok, []jose.KeyAlgorithm{jose.A256GCMKW}, []jose.ContentEncryption{jose.A256GCM})
		if err != nil {
			t.Fatal(err)
		}
		return jwe.Header.KeyID
	}
	before, _ := s.seal("a:b")
	k := s.cur.Load()
	again, _ := s.seal("a:b")
	if s.cur.Load() != k || len(s.keys) != 1 {
		t.Fatal("the period key was derived again")
	}
	clock.t = clock.t.Add(time.Second)
	after, _ := s.seal("a:b")
	n := periodOf(clock.t)
	if kidOf(before) != tokenKid(n-1) || kidOf(again) != tokenKid(n-1) || kidOf(after) != tokenKid(n) {
		t.Fatalf("kids %s %s %s, want %s then %s", kidOf(before), kidOf(again), kidOf(after), tokenKid(n-1), tokenKid(n))
	}
	var prev, cur [32]byte
	copy(prev[:], tokenPeriodKey(key, n-1))
	copy(cur[:], tokenPeriodKey(key, n))
	if _, err := zop.NewAES256GCMCrypto(prev, "").Decrypt(after); err == nil {
		t.Fatal("the new period's token opens with the old period's key")
	}
	if got, err := zop.NewAES256GCMCrypto(cur, "").Decrypt(after); err != nil || got != "a:b" {
		t.Fatalf("the new period's key: %q %v", got, err)
	}
	// A year of days keeps the cache to the window.
	for range 365 {
		clock.t = clock.t.Add(24 * time.Hour)
		if _, err := s.seal("a:b"); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.keys) > 93 {
		t.Fatalf("%d period keys cached", len(s.keys))
	}
}

// TestAccessTokenKeyPeriodsEndToEnd: userinfo and introspection (zitadel's,
// through the sealer) read access tokens of this period and the last, and
// of client_credentials, and tokens issued before the periods (no kid);
// they refuse a kid out of the window and another root key's tokens.
func TestAccessTokenKeyPeriodsEndToEnd(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{AccessTokenTTL: 3 * 86400})
		tok, _ := e.rp(a, sec).login(e.browser())
		plain, err := e.prov.sealer.Decrypt(tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		base := e.prov.sealer.base
		n := periodOf(e.clock.Now())
		legacy, err := zop.NewAES256GCMCrypto(base, "").Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		var otherKey [32]byte
		otherKey[0] = 1
		otherSealer, err := newTokenSealer(otherKey, e.clock, DefaultAccessTokenTTL)
		if err != nil {
			t.Fatal(err)
		}
		otherRoot, _ := otherSealer.seal(plain)
		clientToken := func() string {
			status, body := e.form("/token", url.Values{"grant_type": {"client_credentials"}}, a.ClientID, sec)
			if status != 200 {
				t.Fatalf("client_credentials: %d %v", status, body)
			}
			return body["access_token"].(string)
		}
		// check: userinfo answers a user's token (RFC 6750 section 3.1:
		// 401 otherwise); introspection says active with its subject (RFC
		// 7662 section 2.2).
		check := func(name, token, sub string, ok bool) {
			t.Helper()
			if sub == ana.ID {
				if s, _ := userinfo(t, e.issuer(), token); (s == 200) != ok {
					t.Errorf("%s: userinfo %d", name, s)
				}
			}
			status, in := e.form("/introspect", url.Values{"token": {token}}, a.ClientID, sec)
			if status != 200 || (in["active"] == true) != ok || (ok && in["sub"] != sub) {
				t.Errorf("%s: introspect %d %v", name, status, in)
			}
		}
		cc := clientToken()
		if !strings.Contains(cc, ".") {
			t.Fatalf("client token %q", cc)
		}
		check("issued now", tok.AccessToken, ana.ID, true)
		check("client_credentials now", cc, a.ClientID, true)
		check("issued before the periods (no kid)", legacy, ana.ID, true)
		check("kid five periods ahead", joseSeal(t, tokenPeriodKey(base, n+5), tokenKid(n+5), nil, plain), ana.ID, false)
		check("kid 200 periods back", joseSeal(t, tokenPeriodKey(base, n-200), tokenKid(n-200), nil, plain), ana.ID, false)
		check("another root key", otherRoot, ana.ID, false)

		e.clock.Advance(24 * time.Hour)
		cc2 := clientToken()
		check("issued in the previous period", tok.AccessToken, ana.ID, true)
		check("client_credentials in the previous period", cc, a.ClientID, true)
		check("client_credentials now", cc2, a.ClientID, true)
		check("no kid, a day on", legacy, ana.ID, true)

		// Past the token's lifetime the store refuses it, kid or not.
		e.clock.Advance(2*24*time.Hour + time.Minute)
		check("expired", tok.AccessToken, ana.ID, false)
		check("expired, no kid", legacy, ana.ID, false)
	})
}

// BenchmarkTokenSealer: the per-token cost of sealing and reading an access
// token; zitadel's own Crypto (go-jose) reads the same token for comparison.
func BenchmarkTokenSealer(b *testing.B) {
	var key [32]byte
	s, err := newTokenSealer(key, gatehouse.SystemClock{}, DefaultAccessTokenTTL)
	if err != nil {
		b.Fatal(err)
	}
	const msg = "oat_01m8nssdpa000f4z2gnpjy1hkd:usr_01m8nssdpa000f4z2gnpjy1hkd"
	tok, _ := s.seal(msg)
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			_, _ = s.seal(msg)
		}
	})
	b.Run("decrypt", func(b *testing.B) {
		for b.Loop() {
			_, _ = s.Decrypt(tok)
		}
	})
	var pk [32]byte
	copy(pk[:], tokenPeriodKey(key, periodOf(time.Now())))
	z := zop.NewAES256GCMCrypto(pk, "")
	b.Run("zitadel-decrypt", func(b *testing.B) {
		for b.Loop() {
			_, _ = z.Decrypt(tok)
		}
	})
}
