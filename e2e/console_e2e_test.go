package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
)

// TestConsoleBrowserJourney drives the admin console in Debian's chromium
// (playwright-core, testing/console/journey.mjs) against a whole Gatehouse
// and the real OpenID provider: tenant, OIDC connection, test connection,
// a just-in-time user, their groups, a SCIM token, a webhook, a CSV
// import, the audit log. The
// screenshots land in testing/artifacts/console/ (git-ignored).
func TestConsoleBrowserJourney(t *testing.T) {
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	requireTool(t, err == nil, "node")
	_, err = os.Stat(filepath.Join(root, "testing", "node_modules", "playwright-core", "package.json"))
	requireTool(t, err == nil, "testing/node_modules/playwright-core")
	chrome := os.Getenv("CHROMIUM")
	if chrome == "" {
		chrome = "/usr/bin/chromium"
	}
	_, err = os.Stat(chrome)
	requireTool(t, err == nil, "chromium (apt-get install chromium)")

	gh := servertest.Start(t, servertest.Options{})
	const email = "ada@example.com"
	op := startOP(t, opOptions{RedirectPrefix: gh.URL + "/sso/oidc/", Accounts: []opAccount{
		{Sub: "ada-42", Email: email, EmailVerified: boolp(true), Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Groups: []string{"engineering"}},
	}})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(root, "testing", "console", "journey.mjs"))
	cmd.Dir = filepath.Join(root, "testing")
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1",
		"GATEHOUSE_URL="+gh.URL, "GATEHOUSE_TOKEN="+servertest.AdminToken,
		"OP_ISSUER="+op.Issuer, "OP_CLIENT_ID="+op.ClientID, "OP_CLIENT_SECRET="+op.ClientSecret,
		"USER_EMAIL="+email, "TENANT_DOMAIN=example.com", "CHROMIUM="+chrome,
		"ARTIFACTS="+filepath.Join(root, "testing", "artifacts", "console"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser journey failed: %v\n%s", err, out)
	}
	t.Logf("browser journey:\n%s", out)

	// What the browser did is in the store.
	bg := context.Background()
	err = gh.Store.View(bg, func(tx gatehouse.Tx) error {
		ten, err := tx.GetTenantBySlug(bg, "acme")
		if err != nil {
			return err
		}
		u, err := tx.GetUserByEmail(bg, ten.ID, email)
		if err != nil {
			return err
		}
		if u.Source != gatehouse.SourceJIT || u.Status != gatehouse.StatusActive {
			t.Errorf("user: source %s status %s", u.Source, u.Status)
		}
		ids, err := tx.ListUserIdentities(bg, ten.ID, u.ID)
		if err != nil || len(ids) != 1 || ids[0].Subject != "ada-42" {
			t.Errorf("identity links: %+v %v", ids, err)
		}
		ms, err := tx.ListUserMemberships(bg, ten.ID, u.ID)
		if err != nil {
			return err
		}
		manual := 0
		for _, m := range ms {
			if m.ManagedBy == gatehouse.ManagedByAdmin {
				manual++
			}
		}
		if manual != 1 || len(ms) < 2 {
			t.Errorf("memberships: %d manual of %d", manual, len(ms))
		}
		toks, err := tx.ListSCIMTokens(bg, ten.ID)
		if err != nil || len(toks) != 1 {
			t.Errorf("SCIM tokens: %d %v", len(toks), err)
		}
		hooks, err := tx.ListWebhooks(bg, ten.ID)
		if err != nil || len(hooks) != 1 || hooks[0].URL != "https://hooks.example.com/gatehouse" || len(hooks[0].Events) != 1 || hooks[0].Events[0] != "user.*" {
			t.Errorf("webhooks: %+v %v", hooks, err)
		}
		if zoe, err := tx.GetUserByEmail(bg, ten.ID, "zoe@example.com"); err != nil || zoe.Source != gatehouse.SourceImport || zoe.DisplayName != "Zoe Imported" {
			t.Errorf("imported user: %+v %v", zoe, err)
		}
		evs, _, err := tx.ListAudit(bg, ten.ID, gatehouse.AuditFilter{Action: "user.jit_created"}, gatehouse.Page{Limit: 10})
		if err != nil || len(evs) != 1 {
			t.Errorf("user.jit_created events: %d %v", len(evs), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
