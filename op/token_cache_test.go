package op

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// The code grant spends a code in one statement when the replica holds the
// client's app (spendCodeOfCachedApp, issue #10). Whatever the cached app
// says, the code is spent only for the app as stored: an app changed on
// another replica (the generation held still, so this one keeps serving
// its copy) or a wrong secret spends nothing, and the slow path answers.
func TestCodeGrantCachedApp(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		e.holdAppGeneration()
		code, redeem, elsewhere := e.cachedAppCode, e.redeemCode, e.elsewhere
		want := func(what string, status int, body map[string]any, wantStatus int, wantErr string) {
			t.Helper()
			wantAnswer(t, what, status, body, wantStatus, wantErr)
		}

		// fast is the one statement's answer for c: whether it spent it.
		fast := func(a *gatehouse.App, pass, c string) bool {
			t.Helper()
			var spent bool
			e.update(func(tx gatehouse.Tx) error {
				app, row, _, err := e.prov.spendCodeOfCachedApp(e.ctx, tx, e.tenant.ID,
					&tokenParams{clientID: a.ClientID, clientSecret: pass}, secret.Digest(c), e.clock.Now())
				spent = row != nil && app != nil && app.ClientID == a.ClientID && row.ClientID == a.ClientID
				return err
			})
			return spent
		}
		t.Run("the one statement", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "fast"})
			c, _ := code(a, sec)
			if fast(a, "not-the-secret", c) {
				t.Error("spent with a wrong secret")
			}
			if !fast(a, sec, c) {
				t.Error("a cached app's fresh code was not spent in one statement")
			}
			if fast(a, sec, c) {
				t.Error("spent twice")
			}
			c2, _ := code(a, sec)
			elsewhere(`UPDATE apps SET updated_at = updated_at + 1 WHERE id = $1`, a.ID)
			if fast(a, sec, c2) {
				t.Error("spent for an app changed since it was cached")
			}
		})
		// loginCode starts an authorize request for a without a session,
		// runs change (nil: none) while the user is at the IdP, then
		// finishes the login; it returns the code and the final response.
		loginCode := func(a *gatehouse.App, change func()) (string, *http.Response) {
			t.Helper()
			_, challenge := pkce()
			b := e.browser()
			v := url.Values{"client_id": {a.ClientID}, "redirect_uri": {a.RedirectURIs[0]}, "response_type": {"code"},
				"scope": {"openid"}, "state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
			resp, _ := get(t, e.noFollowWith(b), e.issuer()+"/authorize?"+v.Encode())
			login := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound || !strings.Contains(login, "/login?") {
				t.Fatalf("authorize: %d %s", resp.StatusCode, login)
			}
			if change != nil {
				change()
			}
			if strings.HasPrefix(login, "/") {
				login = e.srv.URL + login
			}
			resp, _ = get(t, b, login)
			u, _ := url.Parse(resp.Header.Get("Location"))
			return u.Query().Get("code"), resp
		}
		t.Run("a login slower than appTTL", func(t *testing.T) {
			// The browser spends longer at the IdP than the authorize
			// endpoint's cache serves the app; the token request still
			// spends the login's code in one statement.
			a, sec := e.app(gatehouse.App{Name: "slow"})
			c, resp := loginCode(a, func() {
				e.clock.Advance(2 * appTTL)
				if _, ok := e.prov.apps.peek(appKey{e.tenant.ID, a.ClientID}); ok {
					t.Fatal("the app is still served past appTTL")
				}
			})
			if c == "" {
				t.Fatalf("the login answered %d %s", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !fast(a, sec, c) {
				t.Error("the code of a slow login was not spent in one statement")
			}
		})
		t.Run("a login answers from the app it knows only while unchanged", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "known"})
			if c, resp := loginCode(a, nil); c == "" || !fast(a, sec, c) {
				t.Fatalf("unchanged app: code %q, %d", c, resp.StatusCode)
			}
			// Another replica drops the redirect URI while the user is at
			// the IdP (this replica's generation stays): no code for it.
			c, resp := loginCode(a, func() {
				elsewhere(`UPDATE apps SET redirect_uris = '["https://elsewhere.example/cb"]', updated_at = updated_at + 1 WHERE id = $1`, a.ID)
			})
			if c != "" || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("redirect URI dropped elsewhere: code %q, status %d %s", c, resp.StatusCode, resp.Header.Get("Location"))
			}
		})
		t.Run("the cached app's secret", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "cached"})
			c, v := code(a, sec)
			status, body := redeem(a, a.ClientID, sec, c, v)
			want("redeem", status, body, http.StatusOK, "")
			status, body = redeem(a, a.ClientID, sec, c, v)
			want("a second redemption", status, body, http.StatusBadRequest, "invalid_grant")
		})
		t.Run("a wrong secret spends nothing", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "wrong"})
			c, v := code(a, sec)
			status, body := redeem(a, a.ClientID, "not-the-secret", c, v)
			want("wrong secret", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = redeem(a, a.ClientID, sec, c, v)
			want("then the secret", status, body, http.StatusOK, "")
		})
		t.Run("a secret rotated elsewhere", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "rotated"})
			c, v := code(a, old)
			rotated := secret.NewToken("")
			elsewhere(`UPDATE apps SET secret_hash = $1, updated_at = updated_at + 1 WHERE id = $2`, secret.Digest(rotated), a.ID)
			status, body := redeem(a, a.ClientID, old, c, v)
			want("the old secret", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = redeem(a, a.ClientID, rotated, c, v)
			want("the new secret", status, body, http.StatusOK, "")
		})
		t.Run("an app deleted elsewhere", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "deleted"})
			c, v := code(a, sec)
			elsewhere(`DELETE FROM apps WHERE id = $1`, a.ID)
			status, body := redeem(a, a.ClientID, sec, c, v)
			want("redeem", status, body, http.StatusUnauthorized, "invalid_client")
		})
		t.Run("another client's code", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "mine"})
			b, bsec := e.app(gatehouse.App{Name: "theirs"})
			c, v := code(a, sec)
			code(b, bsec) // b cached too
			status, body := redeem(a, b.ClientID, bsec, c, v)
			want("b redeems a's code", status, body, http.StatusBadRequest, "invalid_grant")
			// As without the cache: the code is spent by the refusal.
			status, body = redeem(a, a.ClientID, sec, c, v)
			want("then a", status, body, http.StatusBadRequest, "invalid_grant")
		})
		t.Run("the user read with the spend", func(t *testing.T) {
			// The one statement also reads the code's user (on
			// PostgreSQL): groups asked for are still read, and a user
			// deactivated or deleted after signing in gets no tokens.
			bo := e.user("bo@acme.test", "eng")
			e.signInAs(bo)
			a, sec := e.app(gatehouse.App{Name: "user"})
			c, v := code(a, sec, "openid", "groups")
			status, body := redeem(a, a.ClientID, sec, c, v)
			want("groups", status, body, http.StatusOK, "")
			if groups := idTokenClaims(t, body)["groups"]; fmt.Sprint(groups) != "[eng]" {
				t.Errorf("groups %v, want [eng]", groups)
			}
			for _, tc := range []struct {
				name        string
				change      func()
				description string
			}{
				{"deactivated", func() { elsewhere(`UPDATE users SET status = 'deactivated' WHERE id = $1`, bo.ID) }, "The user's account is not active."},
				{"deleted", func() {
					e.update(func(tx gatehouse.Tx) error { return tx.DeleteUser(e.ctx, e.tenant.ID, bo.ID) })
				}, "The user no longer exists."},
			} {
				elsewhere(`UPDATE users SET status = 'active' WHERE id = $1`, bo.ID)
				c, v := code(a, sec)
				tc.change()
				status, body := redeem(a, a.ClientID, sec, c, v)
				want(tc.name, status, body, http.StatusBadRequest, "invalid_grant")
				if body["error_description"] != tc.description {
					t.Errorf("%s: %v, want %q", tc.name, body["error_description"], tc.description)
				}
			}
		})
	})
}

// idTokenClaims is the claims of the id_token of a token response,
// unverified.
func idTokenClaims(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	raw, _ := body["id_token"].(string)
	parts := strings.Split(raw, ".")
	var claims map[string]any
	if len(parts) != 3 {
		t.Fatalf("id_token %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err == nil {
		err = json.Unmarshal(b, &claims)
	}
	if err != nil {
		t.Fatal(err)
	}
	return claims
}

// cachedAppCode runs a code flow with PKCE for a (scopes: openid unless
// given), which leaves a in the replica's cache of apps, and returns the
// code and its verifier.
func (e *env) cachedAppCode(a *gatehouse.App, sec string, scopes ...string) (string, string) {
	e.t.Helper()
	verifier, _ := pkce()
	if len(scopes) == 0 {
		scopes = []string{"openid"}
	}
	q := e.rp(a, sec, scopes...).authorize(e.browser(), oauth2.S256ChallengeOption(verifier))
	if q.Get("code") == "" {
		e.t.Fatalf("authorize answered %v", q)
	}
	if _, ok := e.prov.apps.peekAged(appKey{e.tenant.ID, a.ClientID}, knownAppAge); !ok {
		e.t.Fatal("the app is not in the replica's cache")
	}
	return q.Get("code"), verifier
}

// cachedAppRefreshToken signs in to a with offline_access, which leaves a
// in the replica's cache of apps, and returns the refresh token.
func (e *env) cachedAppRefreshToken(a *gatehouse.App, sec string) string {
	e.t.Helper()
	c, v := e.cachedAppCode(a, sec, "openid", "offline_access")
	status, body := e.redeemCode(a, a.ClientID, sec, c, v)
	wantAnswer(e.t, "redeem", status, body, http.StatusOK, "")
	return body["refresh_token"].(string)
}

// holdAppGeneration stops the replica's catalog generation: writes made
// afterwards look as if another replica made them (e.elsewhere), so the
// replica keeps serving what it cached.
func (e *env) holdAppGeneration() {
	var gen atomic.Uint64
	e.prov.apps.gen = gen.Load
}

// redeemCode posts a's code grant with client_secret_basic (user, pass).
func (e *env) redeemCode(a *gatehouse.App, user, pass, c, verifier string) (int, map[string]any) {
	e.t.Helper()
	return e.form("/token", url.Values{"grant_type": {"authorization_code"}, "code": {c},
		"redirect_uri": {a.RedirectURIs[0]}, "code_verifier": {verifier}}, user, pass)
}

// elsewhere writes to the database as another replica would: this
// replica's caches do not hear of it.
func (e *env) elsewhere(q string, args ...any) {
	e.t.Helper()
	if _, err := e.store.DB().ExecContext(e.ctx, q, args...); err != nil {
		e.t.Fatal(err)
	}
}

// wantAnswer checks a token endpoint answer's status and, when wantErr is
// set, its OAuth error code.
func wantAnswer(t testing.TB, what string, status int, body map[string]any, wantStatus int, wantErr string) {
	t.Helper()
	if status != wantStatus || (wantErr != "" && body["error"] != wantErr) {
		t.Errorf("%s: %d %v, want %d %s", what, status, body, wantStatus, wantErr)
	}
}

// The refresh grant reads the token and its user without the app when the
// replica knows the client's app (readRefresh, issue #10), and only while
// that app is as stored: a wrong secret, a secret rotated or an app
// deleted or stripped of the grant on another replica is refused as
// without the cache, and spends nothing it would not have spent. An app
// the replica read in a refresh grant's slow path is known afterwards.
func TestRefreshGrantCachedApp(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		e.holdAppGeneration()
		login := e.cachedAppRefreshToken
		refresh := func(user, pass, rt string) (int, map[string]any) {
			t.Helper()
			return e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, user, pass)
		}
		// fast is the one statement's answer for rt with the app the
		// replica knows: whether it read the token.
		fast := func(a *gatehouse.App, rt string) bool {
			t.Helper()
			app, ok := e.prov.apps.peekAged(appKey{e.tenant.ID, a.ClientID}, knownAppAge)
			if !ok {
				return false
			}
			var read bool
			e.update(func(tx gatehouse.Tx) error {
				tok, _, err := tx.(cachedAppRefreshReader).ReadRefreshGrantOfApp(e.ctx, e.tenant.ID, app.ClientID, app.ID, app.UpdatedAt, secret.Digest(rt))
				if gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
					return nil
				}
				read = err == nil && tok.ClientID == a.ClientID
				return err
			})
			return read
		}

		t.Run("the cached read", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "fast"})
			rt := login(a, sec)
			if !fast(a, rt) {
				t.Fatal("a cached app's refresh token was not read")
			}
			status, body := refresh(a.ClientID, sec, rt)
			wantAnswer(t, "refresh", status, body, http.StatusOK, "")
			status, body = refresh(a.ClientID, sec, rt)
			wantAnswer(t, "the spent token again", status, body, http.StatusBadRequest, "invalid_grant")
		})
		t.Run("a wrong secret spends nothing", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "wrong"})
			rt := login(a, sec)
			status, body := refresh(a.ClientID, "not-the-secret", rt)
			wantAnswer(t, "wrong secret", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = refresh(a.ClientID, sec, rt)
			wantAnswer(t, "then the secret", status, body, http.StatusOK, "")
		})
		t.Run("a secret rotated elsewhere", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "rotated"})
			rt := login(a, old)
			rotated := secret.NewToken("")
			e.elsewhere(`UPDATE apps SET secret_hash = $1, updated_at = updated_at + 1 WHERE id = $2`, secret.Digest(rotated), a.ID)
			if fast(a, rt) {
				t.Error("read for an app changed since it was cached")
			}
			status, body := refresh(a.ClientID, old, rt)
			wantAnswer(t, "the old secret", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = refresh(a.ClientID, rotated, rt)
			wantAnswer(t, "the new secret", status, body, http.StatusOK, "")
			// The slow path replaced the stale app it knew: the next
			// refresh reads without the app again.
			if !fast(a, body["refresh_token"].(string)) {
				t.Error("the app read by the slow path did not replace the stale one")
			}
		})
		t.Run("an app deleted elsewhere", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "deleted"})
			rt := login(a, sec)
			e.elsewhere(`DELETE FROM apps WHERE id = $1`, a.ID)
			status, body := refresh(a.ClientID, sec, rt)
			wantAnswer(t, "refresh", status, body, http.StatusUnauthorized, "invalid_client")
		})
		t.Run("the refresh grant dropped elsewhere", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "dropped"})
			rt := login(a, sec)
			e.elsewhere(`UPDATE apps SET grant_types = '["authorization_code"]', updated_at = updated_at + 1 WHERE id = $1`, a.ID)
			status, body := refresh(a.ClientID, sec, rt)
			wantAnswer(t, "refresh", status, body, http.StatusBadRequest, "unauthorized_client")
		})
		t.Run("another client's token", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "mine"})
			b, bsec := e.app(gatehouse.App{Name: "theirs"})
			rt := login(a, sec)
			login(b, bsec) // b cached too
			status, body := refresh(b.ClientID, bsec, rt)
			wantAnswer(t, "b refreshes a's token", status, body, http.StatusBadRequest, "invalid_grant")
			status, body = refresh(a.ClientID, sec, rt)
			wantAnswer(t, "then a", status, body, http.StatusOK, "")
		})
		t.Run("the slow path keeps the app", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "slow"})
			rt := login(a, sec)
			e.clock.Advance(2 * knownAppAge)
			if _, ok := e.prov.apps.peekAged(appKey{e.tenant.ID, a.ClientID}, knownAppAge); ok {
				t.Fatal("the app is still known past knownAppAge")
			}
			status, body := refresh(a.ClientID, sec, rt)
			wantAnswer(t, "refresh", status, body, http.StatusOK, "")
			if !fast(a, body["refresh_token"].(string)) {
				t.Error("the app read by the slow path is not known afterwards")
			}
			// Known for version-checked steps only: the authorize
			// endpoint still reads it.
			if _, ok := e.prov.apps.peek(appKey{e.tenant.ID, a.ClientID}); ok {
				t.Error("the authorize endpoint serves an app read in a grant's transaction")
			}
		})
	})
}
