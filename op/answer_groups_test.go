package op

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse"
)

// TestLoginAnswersGroupLimitedApp: a login answers an app limited to some
// groups itself (no resume hop) when the user it leaves in its transaction
// is in one of them; a user outside them, or whose groups the login does
// not carry, goes to resume, which refuses the first with its page as
// before. The code redeems, and the token endpoint checks the groups again.
func TestLoginAnswersGroupLimitedApp(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ana := e.user("ana@acme.test", "Staff")
		bo := e.user("bo@acme.test", "Contractors")
		e.signInAs(ana)
		a, sec := e.app(gatehouse.App{Name: "Payroll", AllowedGroups: []string{"staff"}})
		r := e.rp(a, sec)
		// withGroups is u as a login leaves it: read with its groups.
		withGroups := func(u *gatehouse.User) *gatehouse.User {
			t.Helper()
			var out *gatehouse.User
			e.update(func(tx gatehouse.Tx) error {
				var err error
				out, err = tx.GetUser(e.ctx, e.tenant.ID, u.ID)
				return err
			})
			if out.Groups == nil {
				t.Fatal("a user read with its groups has none")
			}
			return out
		}
		start := func() (string, string) {
			t.Helper()
			verifier, _ := pkce()
			return e.sealedReturn(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))), verifier
		}

		rt, verifier := start()
		next := e.answer(e.tenant, withGroups(ana), rt)
		loc, _ := url.Parse(next)
		if loc == nil || !strings.HasPrefix(next, a.RedirectURIs[0]+"?") || loc.Query().Get("code") == "" {
			t.Fatalf("a member of an allowed group: AnswerLogin answered %q", next)
		}
		if _, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatalf("the code: %v", err)
		}

		// Groups not carried: resume decides.
		noGroups := *withGroups(ana)
		noGroups.Groups = nil
		rt, _ = start()
		if next := e.answer(e.tenant, &noGroups, rt); next != "" {
			t.Fatalf("a user without its groups: AnswerLogin answered %q", next)
		}

		// Not a member: resume refuses with its page, as before.
		rt, _ = start()
		if next := e.answer(e.tenant, withGroups(bo), rt); next != "" {
			t.Fatalf("a user outside the allowed groups: AnswerLogin answered %q", next)
		}
		e.signInAs(bo)
		resp, body := get(t, e.browser(), e.srv.URL+rt)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not allowed to use Payroll") {
			t.Fatalf("resume for a user outside the allowed groups: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}

		// Removed from the group between the login and the token request:
		// the token endpoint refuses.
		rt, verifier = start()
		next = e.answer(e.tenant, withGroups(ana), rt)
		loc, _ = url.Parse(next)
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("AnswerLogin: %q", next)
		}
		e.update(func(tx gatehouse.Tx) error {
			g, err := tx.GetGroupByName(e.ctx, e.tenant.ID, "Staff")
			if err != nil {
				return err
			}
			return tx.DeleteGroup(e.ctx, e.tenant.ID, g.ID)
		})
		if _, err := r.cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("a code redeemed for a user no longer in the app's groups")
		}
	})
}
