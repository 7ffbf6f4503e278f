package op

import (
	"net/url"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
	"golang.org/x/oauth2"
)

// The provider keeps the app and the user only for the length of one
// request (reqState), but for the authorize endpoint's app (apps.go: a
// replica's cache that this process's writes drop): a change made between
// two requests, here through the store as the API would make it, takes
// effect at the very next request.
func TestAppAndUserChangesTakeEffectAtOnce(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test")
		e.signInAs(ana)
		a, oldSec := e.app(gatehouse.App{})
		r := e.rp(a, oldSec)
		b := e.browser()
		tok, _ := r.login(b)
		refresh := func(rt, sec string) (int, map[string]any) {
			return e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, a.ClientID, sec)
		}
		status, body := refresh(tok.RefreshToken, oldSec)
		if status != 200 {
			t.Fatalf("refresh: %d %v", status, body)
		}
		rt := body["refresh_token"].(string)

		// The profile changes: the next ID token carries the new name.
		e.update(func(tx gatehouse.Tx) error {
			u, err := tx.GetUser(e.ctx, e.tenant.ID, ana.ID)
			if err != nil {
				return err
			}
			u.DisplayName = "Ana Maria Lima"
			return tx.UpdateUser(e.ctx, u)
		})
		status, body = refresh(rt, oldSec)
		if status != 200 {
			t.Fatalf("refresh after profile change: %d %v", status, body)
		}
		rt = body["refresh_token"].(string)
		idt, err := r.verifier.Verify(e.ctx, body["id_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		var claims struct{ Name string }
		if err := idt.Claims(&claims); err != nil || claims.Name != "Ana Maria Lima" {
			t.Fatalf("ID token name %q (%v), want the changed one", claims.Name, err)
		}

		// A code obtained before the secret is rotated.
		verifier, _ := pkce()
		q := r.authorize(b, oauth2.S256ChallengeOption(verifier))

		// The secret is rotated: the old one is refused at once, for
		// refresh and for the code exchange; the new one works.
		newSec := secret.NewToken("")
		e.update(func(tx gatehouse.Tx) error {
			app, err := tx.GetApp(e.ctx, e.tenant.ID, a.ID)
			if err != nil {
				return err
			}
			app.SecretHash = secret.Digest(newSec)
			return tx.UpdateApp(e.ctx, app)
		})
		if status, body := refresh(rt, oldSec); status != 401 || body["error"] != "invalid_client" {
			t.Fatalf("refresh with the rotated-out secret: %d %v", status, body)
		}
		cv := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {a.RedirectURIs[0]}, "code_verifier": {verifier}}
		if status, body := e.form("/token", cv, a.ClientID, oldSec); status == 200 {
			t.Fatalf("code exchanged with the rotated-out secret: %v", body)
		}
		status, body = refresh(rt, newSec)
		if status != 200 {
			t.Fatalf("refresh with the new secret: %d %v", status, body)
		}
		rt = body["refresh_token"].(string)

		// A code obtained before the user is deactivated is refused after.
		r.cfg.ClientSecret = newSec
		verifier, _ = pkce()
		q = r.authorize(b, oauth2.S256ChallengeOption(verifier))
		e.update(func(tx gatehouse.Tx) error {
			u, err := tx.GetUser(e.ctx, e.tenant.ID, ana.ID)
			if err != nil {
				return err
			}
			u.Status = gatehouse.StatusDeactivated
			return tx.UpdateUser(e.ctx, u)
		})
		cv.Set("code", q.Get("code"))
		cv.Set("code_verifier", verifier)
		if status, body := e.form("/token", cv, a.ClientID, newSec); status != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("code of a deactivated user: %d %v", status, body)
		}
		if status, body := refresh(rt, newSec); status != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("refresh of a deactivated user: %d %v", status, body)
		}
		e.update(func(tx gatehouse.Tx) error {
			u, err := tx.GetUser(e.ctx, e.tenant.ID, ana.ID)
			if err != nil {
				return err
			}
			u.Status = gatehouse.StatusActive
			return tx.UpdateUser(e.ctx, u)
		})

		// A code obtained before the app is deleted is refused after,
		// and so is every refresh token of the app.
		tok2, _ := r.login(e.browser())
		verifier, _ = pkce()
		q = r.authorize(b, oauth2.S256ChallengeOption(verifier))
		e.update(func(tx gatehouse.Tx) error { return tx.DeleteApp(e.ctx, e.tenant.ID, a.ID) })
		cv.Set("code", q.Get("code"))
		cv.Set("code_verifier", verifier)
		if status, body := e.form("/token", cv, a.ClientID, newSec); status == 200 {
			t.Fatalf("code of a deleted app exchanged: %v", body)
		}
		if status, body := refresh(tok2.RefreshToken, newSec); status == 200 {
			t.Fatalf("refresh of a deleted app: %v", body)
		}
		if resp, _ := get(t, e.browser(), r.cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))); resp.StatusCode == 302 {
			t.Fatalf("authorize for a deleted app redirected to %s", resp.Header.Get("Location"))
		}
	})
}
