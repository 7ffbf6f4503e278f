package op

import (
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
)

// TestPairedAccessToken: an access token issued with a refresh token of
// the same scopes is kept in the refresh token's row (its jti "oap_…"),
// and behaves at userinfo, introspection (RFC 7662) and revocation (RFC
// 7009) as one with a row of its own: revoked alone, the refresh token
// refreshes on; a narrower access token (RFC 6749 section 6) and one
// without a refresh token keep their own rows; a replayed refresh token
// revokes every access token of its grant, paired or not.
func TestPairedAccessToken(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test", "Staff")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{})
		// introspect returns the token's jti and scope, failing when it
		// is not active.
		introspect := func(name, access string) (jti, scope string) {
			t.Helper()
			status, in := e.form("/introspect", url.Values{"token": {access}}, a.ClientID, sec)
			if status != 200 || in["active"] != true || in["sub"] != ana.ID {
				t.Fatalf("%s: introspect %d %v", name, status, in)
			}
			if s, _ := userinfo(t, e.issuer(), access); s != 200 {
				t.Fatalf("%s: userinfo %d", name, s)
			}
			jti, _ = in["jti"].(string)
			scope, _ = in["scope"].(string)
			return jti, scope
		}
		dead := func(name, access string) {
			t.Helper()
			if s, _ := userinfo(t, e.issuer(), access); s != 401 {
				t.Fatalf("%s: userinfo %d, want 401", name, s)
			}
			if _, in := e.form("/introspect", url.Values{"token": {access}}, a.ClientID, sec); in["active"] != false {
				t.Fatalf("%s: active", name)
			}
		}
		refresh := func(name, rt string, extra url.Values) map[string]any {
			t.Helper()
			v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			for k, vs := range extra {
				v[k] = vs
			}
			status, body := e.form("/token", v, a.ClientID, sec)
			if status != 200 {
				t.Fatalf("%s: refresh %d %v", name, status, body)
			}
			return body
		}

		tok, _ := e.rp(a, sec).login(e.browser())
		if jti, _ := introspect("code grant", tok.AccessToken); !strings.HasPrefix(jti, "oap_") {
			t.Fatalf("code grant with offline_access: jti %q, want a paired access token", jti)
		}
		// Revoked alone: the refresh token refreshes on.
		if status, _ := e.form("/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}, a.ClientID, sec); status != 200 {
			t.Fatalf("revoke: %d", status)
		}
		dead("revoked paired token", tok.AccessToken)
		r1 := refresh("after revoking the access token", tok.RefreshToken, nil)
		if jti, _ := introspect("refresh grant", r1["access_token"].(string)); !strings.HasPrefix(jti, "oap_") {
			t.Fatalf("refresh grant: jti %q, want a paired access token", jti)
		}
		// A narrower access token has a row of its own.
		r2 := refresh("narrower", r1["refresh_token"].(string), url.Values{"scope": {"openid email"}})
		narrow := r2["access_token"].(string)
		if jti, scope := introspect("narrower refresh", narrow); !strings.HasPrefix(jti, "oat_") || scope != "openid email" {
			t.Fatalf("narrower refresh: jti %q scope %q", jti, scope)
		}
		// The replay of a spent refresh token revokes the grant: the
		// paired access token of r1 and the narrower one of r2.
		if status, _ := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, a.ClientID, sec); status != 400 {
			t.Fatalf("replay: %d", status)
		}
		dead("paired token of a replayed grant", r1["access_token"].(string))
		dead("narrower token of a replayed grant", narrow)

		// Without offline_access there is no refresh token to pair with.
		tok2, _ := e.rp(a, sec, "openid", "email").login(e.browser())
		if jti, _ := introspect("without offline_access", tok2.AccessToken); !strings.HasPrefix(jti, "oat_") {
			t.Fatalf("code grant without offline_access: jti %q", jti)
		}
		// An access token that outlives its refresh token (whose row is
		// swept a day after it expires) keeps a row of its own.
		long, lsec := e.app(gatehouse.App{Name: "Long access", AccessTokenTTL: 7200, RefreshTokenTTL: 3600})
		tok3, _ := e.rp(long, lsec).login(e.browser())
		status, in := e.form("/introspect", url.Values{"token": {tok3.AccessToken}}, long.ClientID, lsec)
		if jti, _ := in["jti"].(string); status != 200 || in["active"] != true || !strings.HasPrefix(jti, "oat_") {
			t.Fatalf("access token longer-lived than its refresh token: %d %v", status, in)
		}
	})
}
