package op

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-sso/gatehouse"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
)

// grantObs is what an app sees of one token request.
type grantObs struct {
	Status    int
	Error     string
	Keys      []string       // the response's members
	TokenType string         // token_type
	Scope     string         // scope
	ExpiresIn float64        // expires_in
	Claims    map[string]any // the ID token's, minus those that differ per token
	Verified  bool           // the ID token verifies with the app's go-oidc verifier
	After     map[string]int // follow-up checks (userinfo of earlier tokens...)
}

func observe(r *rp, status int, body map[string]any) grantObs {
	o := grantObs{Status: status, After: map[string]int{}}
	o.Error, _ = body["error"].(string)
	for k := range body {
		// Descriptions are free text (RFC 6749 section 5.2).
		if k != "error_description" {
			o.Keys = append(o.Keys, k)
		}
	}
	slices.Sort(o.Keys)
	o.TokenType, _ = body["token_type"].(string)
	o.Scope, _ = body["scope"].(string)
	o.ExpiresIn, _ = body["expires_in"].(float64)
	if raw, ok := body["id_token"].(string); ok {
		parts := strings.Split(raw, ".")
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(b, &o.Claims)
		}
		// Values that differ from one token to the next.
		for _, k := range []string{"iat", "exp", "at_hash", "c_hash"} {
			if _, ok := o.Claims[k]; !ok {
				o.Claims[k+"?"] = "absent"
			}
			delete(o.Claims, k)
		}
		_, err := r.verifier.Verify(r.e.ctx, raw)
		o.Verified = err == nil
	}
	return o
}

// TestTokenGrantsMatchZitadel runs the same token requests through our
// grants (token.go) and through zitadel's, as before token.go, and
// compares what the app sees: status, OAuth error, response members, ID
// token claims and signature, and the effect on earlier tokens.
func TestTokenGrantsMatchZitadel(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test", "Staff")
		e.signInAs(ana)
		conf, sec := e.app(gatehouse.App{Name: "Wiki"})
		pub, _ := e.app(gatehouse.App{Name: "SPA", Public: true, RedirectURIs: []string{"https://spa.example/cb"}, IDTokenSigningAlg: "ES256"})
		ed, edSec := e.app(gatehouse.App{Name: "Ed", IDTokenSigningAlg: "EdDSA"})
		other, otherSec := e.app(gatehouse.App{Name: "Other"})
		b := e.browser()
		rConf, rPub, rEd := e.rp(conf, sec), e.rp(pub, ""), e.rp(ed, edSec, "openid", "email", "offline_access")
		rNoOffline := e.rp(conf, sec, "openid", "profile")

		code := func(r *rp) (string, string) {
			verifier, _ := pkce()
			q := r.authorize(b, oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1"))
			return q.Get("code"), verifier
		}
		codeForm := func(r *rp, c, v string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {r.cfg.RedirectURL}, "code_verifier": {v}}
		}
		exchange := func(r *rp, v url.Values, user, pass string) grantObs {
			status, body := e.form("/token", v, user, pass)
			return observe(r, status, body)
		}
		tokens := func(r *rp, user, pass string) map[string]any {
			c, v := code(r)
			f := codeForm(r, c, v)
			if r.cfg.ClientSecret == "" {
				f.Set("client_id", r.cfg.ClientID)
			}
			status, body := e.form("/token", f, user, pass)
			if status != 200 {
				t.Fatalf("tokens: %d %v", status, body)
			}
			return body
		}
		refreshForm := func(rt string, extra ...string) url.Values {
			v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			for i := 0; i+1 < len(extra); i += 2 {
				v.Set(extra[i], extra[i+1])
			}
			return v
		}
		ui := func(tok any) int {
			s, _ := userinfo(t, e.issuer(), tok.(string))
			return s
		}

		scenarios := []struct {
			name string
			run  func() grantObs
		}{
			{"code confidential RS256", func() grantObs {
				c, v := code(rConf)
				return exchange(rConf, codeForm(rConf, c, v), conf.ClientID, sec)
			}},
			{"code public ES256", func() grantObs {
				c, v := code(rPub)
				f := codeForm(rPub, c, v)
				f.Set("client_id", pub.ClientID)
				return exchange(rPub, f, "", "")
			}},
			{"code EdDSA openid email", func() grantObs {
				c, v := code(rEd)
				return exchange(rEd, codeForm(rEd, c, v), ed.ClientID, edSec)
			}},
			{"code without offline_access", func() grantObs {
				c, v := code(rNoOffline)
				return exchange(rNoOffline, codeForm(rNoOffline, c, v), conf.ClientID, sec)
			}},
			{"code client_secret_post", func() grantObs {
				c, v := code(rConf)
				f := codeForm(rConf, c, v)
				f.Set("client_id", conf.ClientID)
				f.Set("client_secret", sec)
				return exchange(rConf, f, "", "")
			}},
			{"code wrong secret", func() grantObs {
				c, v := code(rConf)
				return exchange(rConf, codeForm(rConf, c, v), conf.ClientID, sec+"x")
			}},
			{"code unknown client", func() grantObs {
				c, v := code(rConf)
				return exchange(rConf, codeForm(rConf, c, v), "nobody", sec)
			}},
			{"code missing", func() grantObs {
				return exchange(rConf, codeForm(rConf, "", "v"), conf.ClientID, sec)
			}},
			{"code unknown", func() grantObs {
				return exchange(rConf, codeForm(rConf, "not-a-code", "v"), conf.ClientID, sec)
			}},
			{"code without verifier", func() grantObs {
				c, _ := code(rConf)
				return exchange(rConf, codeForm(rConf, c, ""), conf.ClientID, sec)
			}},
			{"code wrong verifier", func() grantObs {
				c, v := code(rConf)
				return exchange(rConf, codeForm(rConf, c, v+"x"), conf.ClientID, sec)
			}},
			{"code other redirect_uri", func() grantObs {
				c, v := code(rConf)
				f := codeForm(rConf, c, v)
				f.Set("redirect_uri", "https://wiki.example/cb/")
				return exchange(rConf, f, conf.ClientID, sec)
			}},
			{"code of another client, then its own", func() grantObs {
				c, v := code(rConf)
				o := exchange(rConf, codeForm(rConf, c, v), other.ClientID, otherSec)
				o.After["own client after"] = exchange(rConf, codeForm(rConf, c, v), conf.ClientID, sec).Status
				return o
			}},
			{"code reused", func() grantObs {
				c, v := code(rConf)
				_, first := e.form("/token", codeForm(rConf, c, v), conf.ClientID, sec)
				o := exchange(rConf, codeForm(rConf, c, v), conf.ClientID, sec)
				o.After["first access token"] = ui(first["access_token"])
				o.After["first refresh token"], _ = e.form("/token", refreshForm(first["refresh_token"].(string)), conf.ClientID, sec)
				return o
			}},
			{"refresh", func() grantObs {
				first := tokens(rConf, conf.ClientID, sec)
				o := exchange(rConf, refreshForm(first["refresh_token"].(string)), conf.ClientID, sec)
				o.After["first access token"] = ui(first["access_token"])
				return o
			}},
			{"refresh narrower scope", func() grantObs {
				first := tokens(rConf, conf.ClientID, sec)
				return exchange(rConf, refreshForm(first["refresh_token"].(string), "scope", "openid email"), conf.ClientID, sec)
			}},
			{"refresh wider scope", func() grantObs {
				first := tokens(rEd, ed.ClientID, edSec)
				return exchange(rEd, refreshForm(first["refresh_token"].(string), "scope", "openid email profile"), ed.ClientID, edSec)
			}},
			{"refresh wrong secret, then right", func() grantObs {
				first := tokens(rConf, conf.ClientID, sec)
				o := exchange(rConf, refreshForm(first["refresh_token"].(string)), conf.ClientID, "x")
				o.After["right secret after"], _ = e.form("/token", refreshForm(first["refresh_token"].(string)), conf.ClientID, sec)
				return o
			}},
			{"refresh reused", func() grantObs {
				first := tokens(rConf, conf.ClientID, sec)
				_, second := e.form("/token", refreshForm(first["refresh_token"].(string)), conf.ClientID, sec)
				o := exchange(rConf, refreshForm(first["refresh_token"].(string)), conf.ClientID, sec)
				o.After["successor"], _ = e.form("/token", refreshForm(second["refresh_token"].(string)), conf.ClientID, sec)
				o.After["successor access token"] = ui(second["access_token"])
				return o
			}},
			{"refresh another client's token", func() grantObs {
				first := tokens(rConf, conf.ClientID, sec)
				o := exchange(rConf, refreshForm(first["refresh_token"].(string)), other.ClientID, otherSec)
				o.After["owner after"], _ = e.form("/token", refreshForm(first["refresh_token"].(string)), conf.ClientID, sec)
				return o
			}},
			{"refresh unknown token", func() grantObs {
				return exchange(rConf, refreshForm("gh_rt_nothing"), conf.ClientID, sec)
			}},
			{"refresh missing token", func() grantObs {
				return exchange(rConf, refreshForm(""), conf.ClientID, sec)
			}},
			{"refresh public client", func() grantObs {
				first := tokens(rPub, "", "")
				return exchange(rPub, refreshForm(first["refresh_token"].(string), "client_id", pub.ClientID), "", "")
			}},
		}
		for _, sc := range scenarios {
			var got [2]grantObs
			for i, zitadel := range []bool{false, true} {
				e.prov.zitadelGrants.Store(zitadel)
				got[i] = sc.run()
			}
			e.prov.zitadelGrants.Store(false)
			ours, theirs := got[0], got[1]
			if math.Abs(ours.ExpiresIn-theirs.ExpiresIn) <= 2 {
				ours.ExpiresIn = theirs.ExpiresIn
			}
			if !reflect.DeepEqual(ours, theirs) {
				t.Errorf("%s:\n ours    %+v\n zitadel %+v", sc.name, ours, theirs)
			}
			if ours.Claims != nil && !ours.Verified {
				t.Errorf("%s: ID token does not verify", sc.name)
			}
		}
	})
}

// TestTokenGrantRefusals covers what only our grants check, or answer
// differently from zitadel (which answered an unknown client on the refresh
// grant with a server error).
func TestTokenGrantRefusals(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	a, sec := e.app(gatehouse.App{})
	r := e.rp(a, sec)
	tok, _ := r.login(e.browser())
	rt := tok.RefreshToken
	for _, tc := range []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		err        string
	}{
		{"refresh unknown client", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "nobody", "x", 401, "invalid_client"},
		{"refresh no client", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "", "", 401, "invalid_client"},
		{"repeated parameter", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt, rt}}, a.ClientID, sec, 400, "invalid_request"},
		{"basic and client_secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_secret": {sec}}, a.ClientID, sec, 400, "invalid_request"},
		{"basic and another client_id", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"other"}}, a.ClientID, sec, 400, "invalid_request"},
		{"client assertion", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"x.y.z"}}, "", "", 401, "invalid_client"},
	} {
		status, body := e.form("/token", tc.form, tc.user, tc.pass)
		if status != tc.status || body["error"] != tc.err {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.err)
		}
	}
	// None of those spent the refresh token.
	if status, body := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, a.ClientID, sec); status != 200 {
		t.Fatalf("refresh after refusals: %d %v", status, body)
	}
	// Parameters in the query string are not read (RFC 6749 section
	// 4.1.3: the entity-body).
	req, _ := http.NewRequest(http.MethodPost, e.issuer()+"/token?"+url.Values{"refresh_token": {rt}}.Encode(),
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.ClientID, sec)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("refresh_token in the query: %d", resp.StatusCode)
	}
}

// TestTokenResponseHeaders: no caching (RFC 6749 section 5.1), JSON, and
// the CORS answer zitadel's router gave (any origin, no credentials).
func TestTokenResponseHeaders(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.signInAs(e.user("ana@acme.test"))
	a, sec := e.app(gatehouse.App{})
	tok, _ := e.rp(a, sec).login(e.browser())
	for _, zitadel := range []bool{false, true} {
		e.prov.zitadelGrants.Store(zitadel)
		for _, rt := range []string{tok.RefreshToken, "gh_rt_unknown"} {
			req, _ := http.NewRequest(http.MethodPost, e.issuer()+"/token",
				strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://spa.example")
			req.SetBasicAuth(a.ClientID, sec)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if rt == tok.RefreshToken {
				tok.RefreshToken = "" // spent
			}
			h := resp.Header
			if h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") ||
				h.Get("Access-Control-Allow-Origin") != "https://spa.example" || h.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("zitadel=%v status %d headers %v", zitadel, resp.StatusCode, h)
			}
		}
		// The next round needs a live token.
		tok, _ = e.rp(a, sec).login(e.browser())
	}
	e.prov.zitadelGrants.Store(false)
}

// TestIDTokenClaimsMatchZitadel compares newIDClaims with the claims
// zitadel's CreateIDToken built for this provider (NewIDTokenClaims, the
// user's claims from SetUserinfoFromRequest, at_hash and c_hash), for
// users, scopes and grants of every shape.
func TestIDTokenClaimsMatchZitadel(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	full := &gatehouse.User{ID: "usr_1", TenantID: "ten_1", Email: "ana@acme.test", Username: "ana", DisplayName: "Ana Lima",
		GivenName: "Ana", FamilyName: "Lima", Groups: []string{"Staff", "Admins"}}
	bare := &gatehouse.User{ID: "usr_2", TenantID: "ten_1", Groups: []string{}}
	html := &gatehouse.User{ID: "usr_3", TenantID: "ten_1", Email: "a<b>&c@acme.test", DisplayName: "Ana \"Q\" <Lima> & co \u2028", Groups: nil}
	app := &gatehouse.App{ClientID: "cli_1", TenantID: "ten_1"}
	for _, u := range []*gatehouse.User{full, bare, html} {
		for _, scopes := range [][]string{
			nil, {}, {"openid"}, {"openid", "profile"}, {"openid", "email"}, {"openid", "groups"},
			{"openid", "profile", "email", "groups", "offline_access"}, {"offline_access"},
		} {
			for _, g := range []grantResult{
				{nonce: "n-1", authTime: now.Add(-time.Minute), sid: "sid-1"},
				{amr: []string{"pwd", "mfa"}, authTime: now.Add(-time.Hour), sid: "sid-2"},
				{amr: []string{}},
			} {
				for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
					for _, code := range []string{"", "the-code"} {
						g := g
						g.app, g.user, g.scopes = app, u, scopes
						mine, err := newIDClaims("https://gh.example/t/acme", &g, now, time.Hour, alg, "the-access-token", code)
						if err != nil {
							t.Fatal(err)
						}
						theirs := zitadelIDClaims(t, "https://gh.example/t/acme", &g, now, time.Hour, alg, "the-access-token", code)
						if got, want := claimMap(t, mine), claimMap(t, theirs); !reflect.DeepEqual(got, want) {
							t.Errorf("user %s scopes %v alg %s code %q:\n ours    %v\n zitadel %v", u.ID, scopes, alg, code, got, want)
						}
					}
				}
			}
		}
	}
}

// zitadelIDClaims is zitadel's CreateIDToken (v3.52.0) for this provider,
// with its time.Now() replaced by now.
func zitadelIDClaims(t *testing.T, issuer string, g *grantResult, now time.Time, ttl time.Duration, alg, accessToken, code string) *oidc.IDTokenClaims {
	claims := oidc.NewIDTokenClaims(issuer, g.user.ID, []string{g.app.ClientID}, now.Add(ttl), g.authTime, g.nonce, "", g.amr, g.app.ClientID, 0)
	claims.IssuedAt = oidc.FromTime(now)
	var err error
	if claims.AccessTokenHash, err = oidc.ClaimHash(accessToken, jose.SignatureAlgorithm(alg)); err != nil {
		t.Fatal(err)
	}
	if len(g.scopes) > 0 {
		info := new(oidc.UserInfo)
		userClaims(info, g.user, g.scopes)
		if g.sid != "" {
			info.AppendClaims("sid", g.sid)
		}
		claims.SetUserInfo(info)
	}
	if code != "" {
		if claims.CodeHash, err = oidc.ClaimHash(code, jose.SignatureAlgorithm(alg)); err != nil {
			t.Fatal(err)
		}
	}
	return claims
}

func claimMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJWSSigner: our compact JWS verifies with go-jose, for each
// algorithm, with the header go-jose wrote for zitadel; a key of the wrong
// type for the algorithm is refused.
func TestJWSSigner(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	payload := []byte(`{"iss":"https://gh.example/t/acme","sub":"usr_1","name":"Ana \u003cL\u003e"}`)
	for _, tc := range []struct {
		alg string
		key crypto.Signer
	}{{"RS256", rsaKey}, {"ES256", ecKey}, {"EdDSA", edKey}} {
		s, err := newJWSSigner("key_1", tc.alg, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			jws, err := s.sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.alg)})
			if err != nil {
				t.Fatalf("%s: %v", tc.alg, err)
			}
			got, err := parsed.Verify(tc.key.Public())
			if err != nil || string(got) != string(payload) {
				t.Fatalf("%s: verify: %v %q", tc.alg, err, got)
			}
			h := parsed.Signatures[0].Protected
			if h.KeyID != "key_1" || h.Algorithm != tc.alg || h.ExtraHeaders["typ"] != "JWT" {
				t.Fatalf("%s: header %+v", tc.alg, h)
			}
			// A changed payload does not verify.
			parts := strings.Split(jws, ".")
			forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"usr_2"}`)) + "." + parts[2]
			if p2, err := jose.ParseSigned(forged, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.alg)}); err == nil {
				if _, err := p2.Verify(tc.key.Public()); err == nil {
					t.Fatalf("%s: forged payload verified", tc.alg)
				}
			}
		}
	}
	for _, tc := range []struct {
		alg string
		key crypto.Signer
	}{{"ES256", rsaKey}, {"RS256", ecKey}, {"ES256", ec384}, {"EdDSA", ecKey}, {"ES256", edKey}, {"HS256", rsaKey}} {
		if _, err := newJWSSigner("key_1", tc.alg, tc.key); err == nil {
			t.Errorf("%s with a %T key accepted", tc.alg, tc.key)
		}
	}
}

// TestTokenSealer: the sealer reads its access tokens, zitadel's Crypto
// given the period's key reads them too (the format is zitadel's), go-jose
// reads the header it wrote with the period in kid, and any change to any
// part of a token fails.
func TestTokenSealer(t *testing.T) {
	var key [32]byte
	_, _ = rand.Read(key[:])
	clock := &setClock{time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	s, err := newTokenSealer(key, clock, DefaultAccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	n := periodOf(clock.Now())
	var pk, other [32]byte
	copy(pk[:], tokenPeriodKey(key, n))
	z := zop.NewAES256GCMCrypto(pk, "")
	zBase := zop.NewAES256GCMCrypto(key, "")
	sOther, err := newTokenSealer(other, clock, DefaultAccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, msg := range []string{"oat_01m8nssdpa000f4z2gnpjy1hkd:usr_01m8nssdpa000f4z2gnpjy1hkd", "", ":", strings.Repeat("é", 300)} {
		tok, err := s.seal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok] {
			t.Fatal("two seals alike")
		}
		seen[tok] = true
		if got, err := s.Decrypt(tok); err != nil || got != msg {
			t.Fatalf("decrypts %q as %q, %v", msg, got, err)
		}
		if got, err := z.Decrypt(tok); err != nil || got != msg {
			t.Fatalf("zitadel with the period key decrypts %q as %q, %v", msg, got, err)
		}
		if _, err := zBase.Decrypt(tok); err == nil {
			t.Fatal("decrypted with the token key itself")
		}
		if _, err := sOther.Decrypt(tok); err == nil {
			t.Fatal("decrypted with another key")
		}
		jwe, err := jose.ParseEncryptedCompact(tok, []jose.KeyAlgorithm{jose.A256GCMKW}, []jose.ContentEncryption{jose.A256GCM})
		if err != nil || jwe.Header.Algorithm != "A256GCMKW" || jwe.Header.KeyID != tokenKid(n) {
			t.Fatalf("go-jose: %v %+v", err, jwe)
		}
		parts := strings.Split(tok, ".")
		for i := range parts {
			for _, bad := range []string{"", "AAAA", parts[i] + "A"} {
				p := append([]string(nil), parts...)
				p[i] = bad
				if got, err := s.Decrypt(strings.Join(p, ".")); err == nil && got == msg && p[i] != parts[i] {
					t.Fatalf("part %d changed to %q still decrypts", i, bad)
				}
			}
			if len(parts[i]) > 2 {
				b := []byte(parts[i])
				b[1] ^= 1
				p := append([]string(nil), parts...)
				p[i] = string(b)
				if _, err := s.Decrypt(strings.Join(p, ".")); err == nil {
					t.Fatalf("part %d with a flipped bit decrypts", i)
				}
			}
		}
		for _, bad := range []string{tok + ".", "." + tok, strings.Join(parts[:4], "."), strings.Replace(tok, ".", "..", 1)} {
			if _, err := s.Decrypt(bad); err == nil {
				t.Fatalf("%q decrypts", bad)
			}
		}
	}
}

// TestTokenInvalidClientChallenge: a client that failed HTTP Basic
// authentication gets 401 with a Basic challenge (RFC 6749 section 5.2);
// one that sent its secret in the body gets the 401 without one.
func TestTokenInvalidClientChallenge(t *testing.T) {
	e := newEnv(t, "sqlite")
	a, _ := e.app(gatehouse.App{})
	for _, basic := range []bool{true, false} {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"gh_rt_unknown"}}
		if !basic {
			form.Set("client_id", a.ClientID)
			form.Set("client_secret", "wrong")
		}
		req, _ := http.NewRequest(http.MethodPost, e.issuer()+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(a.ClientID, "wrong")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		challenge := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != 401 || strings.HasPrefix(challenge, "Basic ") != basic {
			t.Errorf("basic=%v: %d, WWW-Authenticate %q", basic, resp.StatusCode, challenge)
		}
	}
}
