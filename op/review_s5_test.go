package op

// Review (session 5) of paired access tokens (an access token kept in its
// refresh token's row, id "oap_…", migration 00350) and of the refresh
// grant's read of a cached app (readRefresh, ReadRefreshGrantOfApp,
// genCache.keepAged): attacks through the real endpoints, on both engines.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	"golang.org/x/oauth2"
)

// s5Paired is what the review's tests hold of one grant.
type s5Paired struct {
	access, refresh, jti string
}

// s5Login runs a code flow of a with offline_access and returns its
// tokens; the access token must be a paired one.
func (e *env) s5Login(a *gatehouse.App, sec string) s5Paired {
	e.t.Helper()
	tok, _ := e.rp(a, sec).login(e.browser())
	return s5Paired{access: tok.AccessToken, refresh: tok.RefreshToken, jti: e.s5JTI(a, sec, tok.AccessToken, "oap_")}
}

// s5JTI introspects an active access token of a and returns its jti,
// which must start with prefix.
func (e *env) s5JTI(a *gatehouse.App, sec, access, prefix string) string {
	e.t.Helper()
	status, in := e.form("/introspect", url.Values{"token": {access}}, a.ClientID, sec)
	jti, _ := in["jti"].(string)
	if status != 200 || in["active"] != true || !strings.HasPrefix(jti, prefix) {
		e.t.Fatalf("introspect: %d %v, want an active token with a jti %s…", status, in, prefix)
	}
	return jti
}

// s5Active reports whether access works at userinfo and is active at a's
// introspection; the two must agree.
func (e *env) s5Active(name string, a *gatehouse.App, sec, access string) bool {
	e.t.Helper()
	us, _ := userinfo(e.t, e.issuer(), access)
	is, in := e.form("/introspect", url.Values{"token": {access}}, a.ClientID, sec)
	if body, _ := in["_body"].(string); is == http.StatusUnauthorized && strings.Contains(body, "unknown client") {
		// a is gone: userinfo answers alone.
		return us == 200
	}
	if is != 200 || (us != 200 && us != 401) {
		e.t.Fatalf("%s: userinfo %d, introspection %d %v", name, us, is, in)
	}
	if (us == 200) != (in["active"] == true) {
		e.t.Fatalf("%s: userinfo %d but introspection active=%v", name, us, in["active"])
	}
	return us == 200
}

// s5Refresh posts a refresh grant of a (client_secret_basic).
func (e *env) s5Refresh(a *gatehouse.App, sec, rt string, extra ...string) (int, map[string]any) {
	e.t.Helper()
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return e.form("/token", v, a.ClientID, sec)
}

// s5Revoke posts a revocation (RFC 7009) to issuer with the client's
// credentials; it always answers 200 (section 2.2).
func (e *env) s5Revoke(issuer string, clientID, sec, token, hint string) {
	e.t.Helper()
	v := url.Values{"token": {token}}
	if hint != "" {
		v.Set("token_type_hint", hint)
	}
	if status, body := e.post(issuer, "/revoke", v, clientID, sec); status != 200 {
		e.t.Fatalf("revoke: %d %v", status, body)
	}
}

// refreshRowOf is the refresh token row id of a paired access token's jti.
func refreshRowOf(t testing.TB, jti string) string {
	t.Helper()
	id, ok := gatehouse.PairedRefreshID(jti)
	if !ok {
		t.Fatalf("%q is no paired access token id", jti)
	}
	return id
}

// Revocation (RFC 7009) of a paired access token: only its client
// revokes it, whatever it sends (the token, the refresh token, the raw
// jti or the refresh row's id, any hint), and revoking the access token
// alone leaves the refresh token live.
func TestReviewS5PairedRevocation(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{Name: "mine"})
		b, bsec := e.app(gatehouse.App{Name: "theirs"})
		globex := e.atkTenant("globex")
		g, gsec := e.app(gatehouse.App{TenantID: globex.ID, ClientID: a.ClientID, Name: "same client id"})
		globexIssuer := e.srv.URL + "/t/globex"

		// Each case revokes what pick chooses of a fresh grant, as who.
		type who struct {
			issuer, clientID, sec string
		}
		own, other, otherTenant := who{e.issuer(), a.ClientID, sec}, who{e.issuer(), b.ClientID, bsec}, who{globexIssuer, g.ClientID, gsec}
		access := func(p s5Paired) string { return p.access }
		refreshTok := func(p s5Paired) string { return p.refresh }
		jti := func(p s5Paired) string { return p.jti }
		row := func(p s5Paired) string { return refreshRowOf(t, p.jti) }
		for _, tc := range []struct {
			name          string
			by            who
			pick          func(s5Paired) string
			hint          string
			accessLive    bool
			refreshLive   bool
			wantRevokedAt bool // the refresh row's revoked_at
		}{
			{"another client, the access token", other, access, "", true, true, false},
			{"another client, the access token, hint access_token", other, access, "access_token", true, true, false},
			{"another client, the access token, hint refresh_token", other, access, "refresh_token", true, true, false},
			{"another client, the refresh token", other, refreshTok, "", true, true, false},
			{"another client, the raw jti", other, jti, "", true, true, false},
			{"another client, the refresh row's id", other, row, "", true, true, false},
			{"another tenant's app of the same client id, the access token", otherTenant, access, "", true, true, false},
			{"another tenant's app of the same client id, the refresh token", otherTenant, refreshTok, "", true, true, false},
			{"another tenant's app of the same client id, the raw jti", otherTenant, jti, "", true, true, false},
			{"own client, the access token, hint access_token", own, access, "access_token", false, true, false},
			{"own client, the access token, hint refresh_token", own, access, "refresh_token", false, true, false},
			{"own client, the access token, no hint", own, access, "", false, true, false},
			{"own client, the raw jti", own, jti, "", false, true, false},
			{"own client, the bare prefix oap_", own, func(s5Paired) string { return "oap_" }, "", true, true, false},
			{"own client, the jti with a wrong suffix", own, func(p s5Paired) string { return p.jti + "x" }, "", true, true, false},
			{"own client, the refresh token", own, refreshTok, "", false, false, true},
			{"own client, the refresh token, hint refresh_token", own, refreshTok, "refresh_token", false, false, true},
			// The refresh row's id (the jti under "ort_") revokes that row,
			// and so its access token.
			{"own client, the refresh row's id", own, row, "", false, false, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := e.s5Login(a, sec)
				e.s5Revoke(tc.by.issuer, tc.by.clientID, tc.by.sec, tc.pick(p), tc.hint)
				if got := e.s5Active(tc.name, a, sec, p.access); got != tc.accessLive {
					t.Errorf("access token live %v, want %v", got, tc.accessLive)
				}
				var revoked, accessRevoked *int64
				if err := e.store.DB().QueryRowContext(e.ctx, `SELECT revoked_at, access_revoked_at FROM op_refresh_tokens WHERE id = $1`,
					refreshRowOf(t, p.jti)).Scan(&revoked, &accessRevoked); err != nil {
					t.Fatal(err)
				}
				if (revoked != nil) != tc.wantRevokedAt || (accessRevoked != nil) != (!tc.accessLive && !tc.wantRevokedAt) {
					t.Errorf("row revoked_at %v access_revoked_at %v", revoked, accessRevoked)
				}
				status, body := e.s5Refresh(a, sec, p.refresh)
				if tc.refreshLive {
					wantAnswer(t, "refresh", status, body, http.StatusOK, "")
					// Revoked alone, the access token stays revoked after
					// the refresh; the new one is live.
					if got := e.s5Active("after refresh", a, sec, p.access); got != tc.accessLive {
						t.Errorf("after refresh: access token live %v", got)
					}
					if status == 200 && !e.s5Active("new access token", a, sec, body["access_token"].(string)) {
						t.Error("the refreshed access token is not live")
					}
				} else {
					wantAnswer(t, "refresh", status, body, http.StatusBadRequest, "invalid_grant")
				}
			})
		}
		t.Run("revoked twice, then the refresh token", func(t *testing.T) {
			p := e.s5Login(a, sec)
			e.s5Revoke(e.issuer(), a.ClientID, sec, p.access, "")
			e.s5Revoke(e.issuer(), a.ClientID, sec, p.access, "")
			e.s5Revoke(e.issuer(), a.ClientID, sec, p.refresh, "")
			if e.s5Active("revoked", a, sec, p.access) {
				t.Error("access token live")
			}
			status, body := e.s5Refresh(a, sec, p.refresh)
			wantAnswer(t, "refresh", status, body, http.StatusBadRequest, "invalid_grant")
		})
	})
}

// Introspection (RFC 7662) and userinfo of a paired access token: only
// its client sees it active, in its tenant; a tampered or forged value
// (sealed with the provider's own key: the server's checks must hold
// even then) is refused, never an error.
func TestReviewS5PairedIntrospection(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		bo := e.user("bo@acme.test")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{Name: "mine"})
		b, bsec := e.app(gatehouse.App{Name: "theirs"})
		globex := e.atkTenant("globex")
		g, gsec := e.app(gatehouse.App{TenantID: globex.ID, ClientID: a.ClientID, Name: "same client id"})
		globexIssuer := e.srv.URL + "/t/globex"
		p := e.s5Login(a, sec)

		introspect := func(issuer, clientID, csec, token string) map[string]any {
			t.Helper()
			status, in := e.post(issuer, "/introspect", url.Values{"token": {token}}, clientID, csec)
			if status != 200 {
				t.Fatalf("introspect: %d %v", status, in)
			}
			return in
		}
		if in := introspect(e.issuer(), b.ClientID, bsec, p.access); in["active"] != false || in["sub"] != nil {
			t.Errorf("another client introspects: %v", in)
		}
		if in := introspect(globexIssuer, g.ClientID, gsec, p.access); in["active"] != false {
			t.Errorf("another tenant's app of the same client id introspects: %v", in)
		}
		if s, _ := userinfo(t, globexIssuer, p.access); s != http.StatusUnauthorized {
			t.Errorf("userinfo at another tenant: %d", s)
		}
		for _, tok := range []string{p.refresh, p.jti, refreshRowOf(t, p.jti)} {
			if in := introspect(e.issuer(), a.ClientID, sec, tok); in["active"] != false {
				t.Errorf("introspect %.8s…: %v", tok, in)
			}
			if s, _ := userinfo(t, e.issuer(), tok); s != http.StatusUnauthorized {
				t.Errorf("userinfo with %.8s…: %d", tok, s)
			}
		}

		seal := func(plain string) string {
			t.Helper()
			v, err := e.prov.sealer.seal(plain)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		// A token of bo's in a's client, to forge from.
		e.signInAs(bo)
		pb := e.s5Login(a, sec)
		rowID := refreshRowOf(t, p.jti)
		mid := len(p.access) / 2
		flip := "A"
		if p.access[mid] == 'A' {
			flip = "B"
		}
		for _, tc := range []struct{ name, token string }{
			{"tampered in the middle", p.access[:mid] + flip + p.access[mid+1:]},
			{"truncated", p.access[:len(p.access)-3]},
			{"the refresh row's id, sealed", seal(rowID + ":" + ana.ID)},
			{"the jti with another user", seal(p.jti + ":" + bo.ID)},
			{"bo's jti with ana", seal(pb.jti + ":" + ana.ID)},
			{"the bare prefix", seal("oap_:" + ana.ID)},
			{"the jti, no subject", seal(p.jti)},
			{"the jti and a subject with a colon", seal(p.jti + ":" + ana.ID + ":x")},
			{"the jti upper-cased", seal(strings.ToUpper(p.jti[:4]) + p.jti[4:] + ":" + ana.ID)},
		} {
			if s, _ := userinfo(t, e.issuer(), tc.token); s != http.StatusUnauthorized {
				t.Errorf("%s: userinfo %d", tc.name, s)
			}
			if in := introspect(e.issuer(), a.ClientID, sec, tc.token); in["active"] != false {
				t.Errorf("%s: introspection %v", tc.name, in)
			}
		}
		// The genuine tokens still work (the forgeries changed nothing).
		if !e.s5Active("ana's", a, sec, p.access) || !e.s5Active("bo's", a, sec, pb.access) {
			t.Error("a genuine token stopped working")
		}
		// A paired token sealed for globex's row of the same id is not
		// acme's: a grant at globex, its jti used at acme.
		// The provider serves globex from the same env: switch e's tenant
		// for the sign-in there.
		acme := e.tenant
		e.tenant = globex
		e.signInAs(e.user("ana@globex.test"))
		tok, _ := e.rp(g, gsec).login(e.browser())
		e.tenant = acme
		status, in := e.post(globexIssuer, "/introspect", url.Values{"token": {tok.AccessToken}}, g.ClientID, gsec)
		gjti, _ := in["jti"].(string)
		if status != 200 || in["active"] != true || !strings.HasPrefix(gjti, "oap_") {
			t.Fatalf("globex introspection: %d %v", status, in)
		}
		if in := introspect(e.issuer(), a.ClientID, sec, tok.AccessToken); in["active"] != false {
			t.Errorf("globex's paired token at acme: %v", in)
		}
		if s, _ := userinfo(t, e.issuer(), tok.AccessToken); s != http.StatusUnauthorized {
			t.Errorf("globex's paired token at acme's userinfo: %d", s)
		}
		// acme's app of the same client id revoking globex's token or
		// jti revokes nothing.
		e.s5Revoke(e.issuer(), a.ClientID, sec, gjti, "")
		e.s5Revoke(e.issuer(), a.ClientID, sec, tok.AccessToken, "")
		e.s5Revoke(e.issuer(), a.ClientID, sec, tok.RefreshToken, "")
		if s, _ := userinfo(t, globexIssuer, tok.AccessToken); s != 200 {
			t.Errorf("acme's client revoked globex's token: userinfo %d", s)
		}
	})
}

// The life of a paired access token matches that of an access token with
// a row of its own: a narrower one of the same grant (RFC 6749 section 6)
// is the witness. Each case makes a grant (paired token p, then a refresh
// with a narrower scope: its own-row token and the new refresh token),
// does something, and checks both access tokens and the refresh token.
func TestReviewS5PairedLifecycle(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		type grant struct {
			a                 *gatehouse.App
			sec               string
			u                 *gatehouse.User
			code, verifier    string
			p                 s5Paired
			narrow, narrowJTI string
			refresh2          string
		}
		n := 0
		newGrant := func(app gatehouse.App) *grant {
			t.Helper()
			n++
			g := &grant{u: e.user("u" + string(rune('a'+n)) + "@acme.test")}
			app.Name = "app " + string(rune('a'+n))
			g.a, g.sec = e.app(app)
			e.signInAs(g.u)
			r := e.rp(g.a, g.sec, "openid", "email", "offline_access")
			g.code, g.verifier = atkCode(r, e.browser())
			status, body := e.redeemCode(g.a, g.a.ClientID, g.sec, g.code, g.verifier)
			wantAnswer(t, "redeem", status, body, http.StatusOK, "")
			g.p = s5Paired{access: body["access_token"].(string), refresh: body["refresh_token"].(string)}
			g.p.jti = e.s5JTI(g.a, g.sec, g.p.access, "oap_")
			status, body = e.s5Refresh(g.a, g.sec, g.p.refresh, "scope", "openid email")
			wantAnswer(t, "narrower refresh", status, body, http.StatusOK, "")
			g.narrow, g.refresh2 = body["access_token"].(string), body["refresh_token"].(string)
			g.narrowJTI = e.s5JTI(g.a, g.sec, g.narrow, "oat_")
			return g
		}
		deactivate := func(g *grant, status string, del bool) {
			e.update(func(tx gatehouse.Tx) error {
				u, err := tx.GetUser(e.ctx, e.tenant.ID, g.u.ID)
				if err != nil {
					return err
				}
				u.Status = status
				if err := tx.UpdateUser(e.ctx, u); err != nil {
					return err
				}
				if del {
					if err := tx.DeleteUser(e.ctx, e.tenant.ID, u.ID); err != nil {
						return err
					}
				}
				_, err = RevokeUserTokens(e.ctx, tx, e.tenant.ID, u.ID, e.clock.Now().UTC())
				return err
			})
		}
		for _, tc := range []struct {
			name string
			app  gatehouse.App
			do   func(t *testing.T, g *grant)
			// Whether both access tokens and the refresh token live after.
			accessLive, refreshLive bool
			refreshErr              string
		}{
			{name: "nothing", accessLive: true, refreshLive: true},
			{name: "user deactivated (RevokeUserTokens), then reactivated",
				do: func(t *testing.T, g *grant) {
					deactivate(g, gatehouse.StatusDeactivated, false)
					e.atkSetStatus(g.u.ID, gatehouse.StatusActive)
				}},
			{name: "user deleted (RevokeUserTokens)",
				do: func(t *testing.T, g *grant) { deactivate(g, gatehouse.StatusActive, true) }},
			{name: "user deactivated in the store only (no revocation)",
				do: func(t *testing.T, g *grant) { e.atkSetStatus(g.u.ID, gatehouse.StatusDeactivated) }},
			{name: "app deleted (DeleteApp)", refreshErr: "invalid_client",
				do: func(t *testing.T, g *grant) {
					e.update(func(tx gatehouse.Tx) error { return tx.DeleteApp(e.ctx, e.tenant.ID, g.a.ID) })
				}},
			{name: "app deleted and re-created with the same client id and secret", refreshErr: "invalid_grant",
				do: func(t *testing.T, g *grant) {
					e.update(func(tx gatehouse.Tx) error {
						if err := tx.DeleteApp(e.ctx, e.tenant.ID, g.a.ID); err != nil {
							return err
						}
						again := &gatehouse.App{TenantID: e.tenant.ID, Name: "again", ClientID: g.a.ClientID,
							RedirectURIs: g.a.RedirectURIs, SecretHash: secret.Digest(g.sec)}
						return tx.CreateApp(e.ctx, again)
					})
				}},
			{name: "secret rotated (no revocation)", accessLive: true, refreshLive: true,
				do: func(t *testing.T, g *grant) {
					rotated := secret.NewToken("")
					e.update(func(tx gatehouse.Tx) error {
						a, err := tx.GetApp(e.ctx, e.tenant.ID, g.a.ID)
						if err != nil {
							return err
						}
						a.SecretHash = secret.Digest(rotated)
						return tx.UpdateApp(e.ctx, a)
					})
					g.sec = rotated
				}},
			{name: "the code replayed",
				do: func(t *testing.T, g *grant) {
					status, body := e.redeemCode(g.a, g.a.ClientID, g.sec, g.code, g.verifier)
					wantAnswer(t, "code replay", status, body, http.StatusBadRequest, "invalid_grant")
				}},
			{name: "the first refresh token replayed",
				do: func(t *testing.T, g *grant) {
					status, body := e.s5Refresh(g.a, g.sec, g.p.refresh)
					wantAnswer(t, "refresh replay", status, body, http.StatusBadRequest, "invalid_grant")
				}},
			{name: "the grant revoked through its refresh token",
				do: func(t *testing.T, g *grant) { e.s5Revoke(e.issuer(), g.a.ClientID, g.sec, g.refresh2, "") }},
			{name: "the access tokens revoked alone", refreshLive: true,
				do: func(t *testing.T, g *grant) {
					e.s5Revoke(e.issuer(), g.a.ClientID, g.sec, g.p.access, "")
					e.s5Revoke(e.issuer(), g.a.ClientID, g.sec, g.narrow, "")
				}},
			{name: "past the access tokens' lifetime, within the refresh token's", refreshLive: true,
				app: gatehouse.App{AccessTokenTTL: 60, RefreshTokenTTL: 3600},
				do:  func(t *testing.T, g *grant) { e.clock.Advance(61 * time.Second) }},
			{name: "just before the access tokens' expiry", accessLive: true, refreshLive: true,
				app: gatehouse.App{AccessTokenTTL: 60, RefreshTokenTTL: 3600},
				do:  func(t *testing.T, g *grant) { e.clock.Advance(50 * time.Second) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g := newGrant(tc.app)
				if tc.do != nil {
					tc.do(t, g)
				}
				for _, tok := range []struct{ name, v string }{{"paired", g.p.access}, {"own row", g.narrow}} {
					if got := e.s5Active(tok.name, g.a, g.sec, tok.v); got != tc.accessLive {
						t.Errorf("%s access token live %v, want %v", tok.name, got, tc.accessLive)
					}
				}
				status, body := e.s5Refresh(g.a, g.sec, g.refresh2)
				switch {
				case tc.refreshLive:
					wantAnswer(t, "refresh", status, body, http.StatusOK, "")
					if status == 200 {
						next := body["access_token"].(string)
						e.s5JTI(g.a, g.sec, next, "oap_")
					}
				case tc.refreshErr == "invalid_client":
					wantAnswer(t, "refresh", status, body, http.StatusUnauthorized, "invalid_client")
				default:
					wantAnswer(t, "refresh", status, body, http.StatusBadRequest, "invalid_grant")
				}
			})
		}

		t.Run("concurrent refreshes", func(t *testing.T) {
			g := newGrant(gatehouse.App{})
			wins, won := atkRace(t, 12, func() atkResp { return e.atkToken(atkRefreshForm(g.refresh2), g.a.ClientID, g.sec) })
			if wins != 1 {
				t.Fatalf("%d concurrent refreshes won, want 1", wins)
			}
			// The losers replayed a spent token: the grant is revoked,
			// the winner's paired token with it.
			for _, tok := range []string{g.p.access, g.narrow, won.body["access_token"].(string)} {
				if e.s5Active("after the race", g.a, g.sec, tok) {
					t.Errorf("an access token of the raced grant is live")
				}
			}
			atkRefused(t, "the winner's refresh token", e.atkToken(atkRefreshForm(won.body["refresh_token"].(string)), g.a.ClientID, g.sec), 400, "invalid_grant")
		})
		t.Run("narrower, then the grant's scopes, then replay", func(t *testing.T) {
			g := newGrant(gatehouse.App{})
			status, body := e.s5Refresh(g.a, g.sec, g.refresh2, "scope", "openid email offline_access")
			wantAnswer(t, "the full scope named", status, body, http.StatusOK, "")
			full := body["access_token"].(string)
			e.s5JTI(g.a, g.sec, full, "oap_")
			if s, info := userinfo(t, e.issuer(), g.narrow); s != 200 || info["email"] == nil {
				t.Errorf("narrower token at userinfo: %d %v", s, info)
			}
			// The replay of refresh2 revokes every access token of the grant.
			status, body = e.s5Refresh(g.a, g.sec, g.refresh2)
			wantAnswer(t, "replay", status, body, http.StatusBadRequest, "invalid_grant")
			for _, tok := range []string{g.p.access, g.narrow, full} {
				if e.s5Active("after replay", g.a, g.sec, tok) {
					t.Error("an access token of a replayed grant is live")
				}
			}
		})
		t.Run("swept rows", func(t *testing.T) {
			g := newGrant(gatehouse.App{AccessTokenTTL: 60, RefreshTokenTTL: 120})
			e.clock.Advance(121*time.Second + 25*time.Hour)
			// Any grant purges expired rows in passing.
			newGrant(gatehouse.App{})
			var left int
			if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM op_refresh_tokens WHERE id = $1`, refreshRowOf(t, g.p.jti)).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Errorf("the expired refresh row was not swept")
			}
			if e.s5Active("swept", g.a, g.sec, g.p.access) {
				t.Error("a swept paired token is live")
			}
		})
	})
}

// The refresh grant of a client whose app the replica cached, while
// another replica changes the app (this replica's generation is held
// still): no token is issued to a client without the app's current
// secret, nothing is spent by a refused request, and the app a grant
// kept (keepAged) is never what the authorize endpoint decides from.
func TestReviewS5CachedRefreshElsewhere(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		e.holdAppGeneration()
		login := e.cachedAppRefreshToken
		// refuse checks a refused refresh that issues nothing.
		refuse := func(name string, a *gatehouse.App, user, pass, rt string, status int, code string) {
			t.Helper()
			n := e.atkIssued()
			atkRefused(t, name, e.atkToken(atkRefreshForm(rt), user, pass), status, code)
			if e.atkIssued() != n {
				t.Errorf("%s: tokens issued", name)
			}
		}

		t.Run("deleted and re-created with the same client id", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "recreated", ClientID: "s5-recreated"})
			rt := login(a, old)
			fresh := secret.NewToken("")
			e.update(func(tx gatehouse.Tx) error {
				if err := tx.DeleteApp(e.ctx, e.tenant.ID, a.ID); err != nil {
					return err
				}
				return tx.CreateApp(e.ctx, &gatehouse.App{TenantID: e.tenant.ID, Name: "again", ClientID: a.ClientID,
					RedirectURIs: a.RedirectURIs, SecretHash: secret.Digest(fresh)})
			})
			refuse("the deleted app's secret", a, a.ClientID, old, rt, http.StatusUnauthorized, "invalid_client")
			refuse("the new app's secret, the old app's token", a, a.ClientID, fresh, rt, http.StatusBadRequest, "invalid_grant")
		})
		t.Run("deleted and re-created by raw SQL with the same row id and updated_at, another secret", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "raw", ClientID: "s5-raw"})
			rt := login(a, old)
			fresh := secret.NewToken("")
			// Not a write the store makes (every write moves updated_at),
			// but the check is on the row as stored: the secret differs.
			e.elsewhere(`UPDATE apps SET secret_hash = $1, updated_at = updated_at + 1 WHERE id = $2`, secret.Digest(fresh), a.ID)
			refuse("the old secret", a, a.ClientID, old, rt, http.StatusUnauthorized, "invalid_client")
			status, body := e.s5Refresh(a, fresh, rt)
			wantAnswer(t, "the new secret", status, body, http.StatusOK, "")
		})
		t.Run("made confidential elsewhere", func(t *testing.T) {
			a, _ := e.app(gatehouse.App{Name: "spa", Public: true, GrantTypes: []string{"authorization_code", "refresh_token"}})
			c, v := e.cachedAppCode(a, "", "openid", "offline_access")
			status, body := e.form("/token", url.Values{"grant_type": {"authorization_code"}, "code": {c}, "client_id": {a.ClientID},
				"redirect_uri": {a.RedirectURIs[0]}, "code_verifier": {v}}, "", "")
			wantAnswer(t, "redeem", status, body, http.StatusOK, "")
			rt, _ := body["refresh_token"].(string)
			if rt == "" {
				t.Skip("no refresh token for a public client")
			}
			sec := secret.NewToken("")
			e.elsewhere(`UPDATE apps SET is_public = $1, secret_hash = $2, updated_at = updated_at + 1 WHERE id = $3`, false, secret.Digest(sec), a.ID)
			n := e.atkIssued()
			atkRefused(t, "without a secret", e.atkToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {a.ClientID}}, "", ""), http.StatusUnauthorized, "invalid_client")
			if e.atkIssued() != n {
				t.Error("tokens issued")
			}
			status, body = e.s5Refresh(a, sec, rt)
			wantAnswer(t, "with the new secret", status, body, http.StatusOK, "")
		})
		t.Run("the same client id in another tenant", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "acme's", ClientID: "s5-shared"})
			rt := login(a, sec)
			globex := e.atkTenant("globex-s5")
			g, gsec := e.app(gatehouse.App{TenantID: globex.ID, Name: "globex's", ClientID: "s5-shared"})
			at := func(user, pass string) atkResp {
				return e.atkPost(e.srv.URL+"/t/globex-s5", "/token", "application/x-www-form-urlencoded", atkRefreshForm(rt).Encode(), user, pass)
			}
			n := e.atkIssued()
			atkRefused(t, "acme's secret at globex", at(a.ClientID, sec), http.StatusUnauthorized, "invalid_client")
			atkRefused(t, "globex's secret, acme's token", at(g.ClientID, gsec), http.StatusBadRequest, "invalid_grant")
			if e.atkIssued() != n {
				t.Error("tokens issued")
			}
			status, body := e.s5Refresh(a, sec, rt)
			wantAnswer(t, "at acme", status, body, http.StatusOK, "")
		})
		t.Run("a kept app is not the authorize endpoint's", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "kept", RedirectURIs: []string{"https://kept.example/cb", "https://kept.example/old"}})
			rt := login(a, sec)
			e.clock.Advance(2 * knownAppAge)
			// A wrong secret on the slow path spends nothing.
			refuse("wrong secret", a, a.ClientID, "nope", rt, http.StatusUnauthorized, "invalid_client")
			status, body := e.s5Refresh(a, sec, rt)
			wantAnswer(t, "refresh", status, body, http.StatusOK, "")
			rt = body["refresh_token"].(string)
			key := appKey{e.tenant.ID, a.ClientID}
			if _, ok := e.prov.apps.peekAged(key, knownAppAge); !ok {
				t.Fatal("the slow path kept nothing")
			}
			// Another replica drops a redirect URI; the authorize endpoint
			// must decide from the app as stored, not the kept one.
			e.elsewhere(`UPDATE apps SET redirect_uris = '["https://kept.example/cb"]', updated_at = updated_at + 1 WHERE id = $1`, a.ID)
			if _, ok := e.prov.apps.peek(key); ok {
				t.Fatal("the authorize endpoint's peek serves the kept app")
			}
			_, challenge := pkce()
			v := url.Values{"client_id": {a.ClientID}, "redirect_uri": {"https://kept.example/old"}, "response_type": {"code"},
				"scope": {"openid"}, "state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
			resp, _ := get(t, e.browser(), e.issuer()+"/authorize?"+v.Encode())
			if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "https://kept.example/old") || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("authorize with the dropped redirect URI: %d %s", resp.StatusCode, loc)
			}
			// And a secret rotated elsewhere after the grant kept the app.
			rotated := secret.NewToken("")
			e.elsewhere(`UPDATE apps SET secret_hash = $1, updated_at = updated_at + 1 WHERE id = $2`, secret.Digest(rotated), a.ID)
			refuse("the secret the kept app has", a, a.ClientID, sec, rt, http.StatusUnauthorized, "invalid_client")
			status, body = e.s5Refresh(a, rotated, rt)
			wantAnswer(t, "the rotated secret", status, body, http.StatusOK, "")
			// The authorize endpoint reads the app (a normal entry) and
			// a sign-in with the kept redirect URI still works.
			verifier, _ := pkce()
			q := e.rp(a, rotated, "openid").authorize(e.browser(), oauth2.S256ChallengeOption(verifier))
			if q.Get("code") == "" {
				t.Errorf("authorize with the registered redirect URI: %v", q)
			}
		})
	})
}
