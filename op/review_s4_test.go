package op

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// Review (session 4) of the version-checked fast paths of a sign-in:
// spendCodeOfCachedApp (the code grant from the replica's app) and
// answerWithKnownApp (the login's code from the replica's app). Whatever
// the replica cached, a client authenticates and a code is issued only
// against the app as stored.
func TestReviewS4CachedAppAttacks(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		e.holdAppGeneration()
		code, elsewhere := e.cachedAppCode, e.elsewhere
		// redeem posts the code grant: basic authentication when basic,
		// else client_id and client_secret (when not empty) in the form.
		redeemAt := func(issuer string, a *gatehouse.App, clientID, sec, c, verifier string, basic bool) (int, map[string]any) {
			t.Helper()
			v := url.Values{"grant_type": {"authorization_code"}, "code": {c},
				"redirect_uri": {a.RedirectURIs[0]}, "code_verifier": {verifier}}
			if basic {
				return e.post(issuer, "/token", v, clientID, sec)
			}
			v.Set("client_id", clientID)
			if sec != "" {
				v.Set("client_secret", sec)
			}
			return e.post(issuer, "/token", v, "", "")
		}
		redeem := e.redeemCode
		want := func(what string, status int, body map[string]any, wantStatus int, wantErr string) {
			t.Helper()
			wantAnswer(t, what, status, body, wantStatus, wantErr)
		}

		t.Run("secret rotated through this replica after the code", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "rotate-here"})
			c, v := code(a, old)
			rotated := secret.NewToken("")
			e.update(func(tx gatehouse.Tx) error {
				a.SecretHash = secret.Digest(rotated)
				return tx.UpdateApp(e.ctx, a)
			})
			// The cached copy (peekAged ignores the generation) still has
			// the old secret: the statement must refuse it.
			status, body := redeem(a, a.ClientID, old, c, v)
			want("the old secret", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = redeem(a, a.ClientID, rotated, c, v)
			want("the new secret", status, body, http.StatusOK, "")
		})
		t.Run("secret rotated elsewhere, client_secret_post", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "rotate-post"})
			c, v := code(a, old)
			rotated := secret.NewToken("")
			elsewhere(`UPDATE apps SET secret_hash = $1, updated_at = updated_at + 7 WHERE id = $2`, secret.Digest(rotated), a.ID)
			status, body := redeemAt(e.issuer(), a, a.ClientID, old, c, v, false)
			want("the old secret in the form", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = redeemAt(e.issuer(), a, a.ClientID, rotated, c, v, false)
			want("the new secret in the form", status, body, http.StatusOK, "")
		})
		t.Run("app deleted and re-created with the same client id", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "recreated", ClientID: "recreated-client"})
			c, v := code(a, old)
			e.update(func(tx gatehouse.Tx) error { return tx.DeleteApp(e.ctx, a.TenantID, a.ID) })
			b, fresh := e.app(gatehouse.App{Name: "recreated 2", ClientID: "recreated-client"})
			if b.UpdatedAt.Equal(a.UpdatedAt) {
				t.Fatalf("re-created app has the old updated_at %v", a.UpdatedAt)
			}
			status, body := redeem(a, a.ClientID, old, c, v)
			want("the deleted app's secret", status, body, http.StatusUnauthorized, "invalid_client")
			// And the new app's secret with a new code works.
			c2, v2 := code(b, fresh)
			status, body = redeem(b, b.ClientID, fresh, c2, v2)
			want("the new app", status, body, http.StatusOK, "")
		})
		t.Run("confidential client without its secret", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "nosecret"})
			c, v := code(a, sec)
			status, body := redeemAt(e.issuer(), a, a.ClientID, "", c, v, false)
			want("no secret", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = redeemAt(e.issuer(), a, a.ClientID, "", c, v, true)
			want("basic with an empty secret", status, body, http.StatusUnauthorized, "invalid_client")
			// Nothing was spent.
			status, body = redeem(a, a.ClientID, sec, c, v)
			want("then the secret", status, body, http.StatusOK, "")
		})
		t.Run("public client with PKCE", func(t *testing.T) {
			a, _ := e.app(gatehouse.App{Name: "spa", Public: true})
			c, v := code(a, "")
			wrong, _ := pkce()
			status, body := redeemAt(e.issuer(), a, a.ClientID, "", c, wrong, false)
			want("a wrong verifier", status, body, http.StatusBadRequest, "invalid_grant")
			c, v = code(a, "")
			status, body = redeemAt(e.issuer(), a, a.ClientID, "", c, "", false)
			want("no verifier", status, body, http.StatusBadRequest, "invalid_request")
			c, v = code(a, "")
			status, body = redeemAt(e.issuer(), a, a.ClientID, "", c, v, false)
			want("the verifier", status, body, http.StatusOK, "")
			// A public app made confidential elsewhere: no more secretless
			// redemptions from the cached (public) copy.
			c, v = code(a, "")
			sec := secret.NewToken("")
			elsewhere(`UPDATE apps SET is_public = $1, secret_hash = $2, updated_at = updated_at + 1 WHERE id = $3`, false, secret.Digest(sec), a.ID)
			status, body = redeemAt(e.issuer(), a, a.ClientID, "", c, v, false)
			want("made confidential elsewhere", status, body, http.StatusUnauthorized, "invalid_client")
		})
		t.Run("a public client redeems a confidential client's code", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "conf"})
			p, _ := e.app(gatehouse.App{Name: "pub", Public: true})
			c, v := code(a, sec)
			code(p, "") // p cached too
			status, body := redeemAt(e.issuer(), a, p.ClientID, "", c, v, false)
			want("the public client", status, body, http.StatusBadRequest, "invalid_grant")
		})
		t.Run("a reused code revokes the fast redemption's tokens", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "reuse"})
			c, v := code(a, sec)
			var spent bool
			// The first redemption takes the one statement.
			status, body := redeem(a, a.ClientID, sec, c, v)
			want("first", status, body, http.StatusOK, "")
			e.update(func(tx gatehouse.Tx) error {
				_, row, _, err := e.prov.spendCodeOfCachedApp(e.ctx, tx, e.tenant.ID,
					&tokenParams{clientID: a.ClientID, clientSecret: sec}, secret.Digest(c), e.clock.Now())
				spent = row != nil
				return err
			})
			if spent {
				t.Fatal("the one statement spent a spent code")
			}
			access, _ := body["access_token"].(string)
			if st, _ := userinfo(t, e.issuer(), access); st != http.StatusOK {
				t.Fatalf("userinfo before the reuse: %d", st)
			}
			status, body = redeem(a, a.ClientID, sec, c, v)
			want("reuse", status, body, http.StatusBadRequest, "invalid_grant")
			if st, _ := userinfo(t, e.issuer(), access); st != http.StatusUnauthorized {
				t.Errorf("the first redemption's access token after a reuse: userinfo %d, want 401", st)
			}
		})
		t.Run("the same client id in two tenants", func(t *testing.T) {
			other := &gatehouse.Tenant{Slug: "globex", Name: "Globex", SupportContact: "it@globex.test", Domains: []string{"globex.test"}}
			e.update(func(tx gatehouse.Tx) error { return tx.CreateTenant(e.ctx, other) })
			a, sec := e.app(gatehouse.App{Name: "shared", ClientID: "shared-client"})
			b, bsec := e.app(gatehouse.App{Name: "shared", ClientID: "shared-client", TenantID: other.ID})
			c, v := code(a, sec)
			// The other tenant's authorize endpoint caches its app.
			_, challenge := pkce()
			q := url.Values{"client_id": {b.ClientID}, "redirect_uri": {b.RedirectURIs[0]}, "response_type": {"code"},
				"scope": {"openid"}, "state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
			get(t, e.noFollowWith(e.browser()), e.srv.URL+"/t/"+other.Slug+"/authorize?"+q.Encode())
			if _, ok := e.prov.apps.peekAged(appKey{other.ID, b.ClientID}, knownAppAge); !ok {
				t.Fatal("the other tenant's app is not cached")
			}
			otherIssuer := e.srv.URL + "/t/" + other.Slug
			status, body := redeemAt(otherIssuer, b, b.ClientID, bsec, c, v, true)
			want("at the other tenant with its secret", status, body, http.StatusBadRequest, "invalid_grant")
			status, body = redeemAt(e.issuer(), a, a.ClientID, bsec, c, v, true)
			want("the other tenant's secret here", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = redeemAt(otherIssuer, b, b.ClientID, sec, c, v, true)
			want("this tenant's secret there", status, body, http.StatusUnauthorized, "invalid_client")
		})
		t.Run("concurrent redemptions of one code", func(t *testing.T) {
			a, sec := e.app(gatehouse.App{Name: "race"})
			for round := range 3 {
				c, v := code(a, sec)
				const n = 8
				var wg sync.WaitGroup
				statuses := make([]int, n)
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						statuses[i], _ = redeem(a, a.ClientID, sec, c, v)
					}()
				}
				wg.Wait()
				ok := 0
				for _, s := range statuses {
					switch s {
					case http.StatusOK:
						ok++
					case http.StatusBadRequest:
					default:
						t.Errorf("round %d: status %d", round, s)
					}
				}
				if ok != 1 {
					t.Errorf("round %d: %d of %d concurrent redemptions succeeded, want 1 (%v)", round, ok, n, statuses)
				}
			}
		})

		// loginCode starts an authorize request for a without a session,
		// runs change while the user is at the IdP, then finishes the
		// login; it returns the code the login answered with (if any) and
		// the final response.
		loginCode := func(a *gatehouse.App, change func()) (string, string, *http.Response) {
			t.Helper()
			verifier, challenge := pkce()
			b := e.browser()
			v := url.Values{"client_id": {a.ClientID}, "redirect_uri": {a.RedirectURIs[0]}, "response_type": {"code"},
				"scope": {"openid"}, "state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
			resp, _ := get(t, e.noFollowWith(b), e.issuer()+"/authorize?"+v.Encode())
			login := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound || !strings.Contains(login, "/login?") {
				t.Fatalf("authorize: %d %s", resp.StatusCode, login)
			}
			change()
			if strings.HasPrefix(login, "/") {
				login = e.srv.URL + login
			}
			resp, _ = get(t, b, login)
			u, _ := url.Parse(resp.Header.Get("Location"))
			return u.Query().Get("code"), verifier, resp
		}
		otherConn := &gatehouse.Connection{TenantID: e.tenant.ID, Type: gatehouse.ConnMock, Name: "Other", Enabled: true, Config: json.RawMessage(`{}`), JIT: gatehouse.DefaultJITPolicy()}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateConnection(e.ctx, otherConn) })
		for _, tc := range []struct {
			name, set, arg string
		}{
			{"limited to a group elsewhere", "allowed_groups", `["Admins"]`},
			{"limited to another connection elsewhere", "allowed_connections", fmt.Sprintf(`[%q]`, otherConn.ID)},
			{"redirect URI removed elsewhere", "redirect_uris", `["https://wiki.example/other"]`},
			{"deleted elsewhere", "", ""},
		} {
			t.Run("no login code: "+tc.name, func(t *testing.T) {
				a, _ := e.app(gatehouse.App{Name: tc.name})
				before := e.loginCount()
				c, _, resp := loginCode(a, func() {
					if tc.set == "" {
						elsewhere(`DELETE FROM apps WHERE id = $1`, a.ID)
						return
					}
					elsewhere(`UPDATE apps SET `+tc.set+` = $1, updated_at = updated_at + 1 WHERE id = $2`, tc.arg, a.ID)
				})
				if tc.set == "allowed_connections" {
					// resume sends the browser to log in again through the
					// allowed connection (the fake login honours it): a
					// code may follow, but only for a session of that
					// connection, never for the first login's.
					e.mu.Lock()
					visits := e.logins[before:]
					e.mu.Unlock()
					if len(visits) != 2 || visits[1].Get("connection") != otherConn.ID {
						t.Errorf("login visits %v: want the first login refused and a second through %s", visits, otherConn.ID)
					}
					return
				}
				if c != "" {
					t.Errorf("the login issued a code: %d %s", resp.StatusCode, resp.Header.Get("Location"))
				}
				var n int
				if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM op_auth_requests WHERE client_id = $1 AND code_hash IS NOT NULL`, a.ClientID).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d code rows written for the app", n)
				}
			})
		}
		t.Run("login code while the secret is rotated through this replica", func(t *testing.T) {
			a, old := e.app(gatehouse.App{Name: "rotate-at-idp"})
			rotated := secret.NewToken("")
			c, v, resp := loginCode(a, func() {
				e.update(func(tx gatehouse.Tx) error {
					a.SecretHash = secret.Digest(rotated)
					return tx.UpdateApp(e.ctx, a)
				})
			})
			if c == "" {
				t.Fatalf("no code: %d %s", resp.StatusCode, resp.Header.Get("Location"))
			}
			status, body := redeem(a, a.ClientID, old, c, v)
			want("the old secret", status, body, http.StatusUnauthorized, "invalid_client")
			status, body = redeem(a, a.ClientID, rotated, c, v)
			want("the new secret", status, body, http.StatusOK, "")
		})
	})
}
