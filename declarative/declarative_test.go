package declarative_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/apiclient"
	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
	"github.com/gatehouse-sso/gatehouse/declarative"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

const sample = `
tenants:
  - slug: acme
    name: Acme
    domains: [acme.example, acme.test]
    support_contact: it@acme.example
    admin_groups: [Admins]
    groups:
      - name: Admins
      - name: Engineering
    connections:
      - name: Dev logins
        type: mock
        config:
          users:
            - {subject: "u1", email: "ada@acme.example", email_verified: true}
        jit:
          enabled: true
          default_groups: [Engineering]
      - name: GitHub
        type: oauth2
        config:
          authorize_url: https://github.example/login/oauth/authorize
          token_url: https://github.example/login/oauth/access_token
          userinfo_url: https://api.github.example/user
          client_id: gh-client
          subject_path: id
        secrets:
          client_secret: ${GH_SECRET}
        mapping:
          email: email
    apps:
      - name: Wiki
        redirect_uris: [https://wiki.acme.example/callback]
        allowed_groups: [Engineering]
        allowed_connections: [GitHub]
    webhooks:
      - url: https://hooks.acme.example/gatehouse
        events: ["user.*"]
`

const secretValue = "gh-oauth-secret-value-0123456789"

func env(k string) string {
	if k == "GH_SECRET" {
		return secretValue
	}
	return ""
}

func plan(t *testing.T, c *apiclient.Client, yml string, opts declarative.Options) (*declarative.Plan, string) {
	t.Helper()
	f, err := declarative.Parse(strings.NewReader(yml))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Getenv == nil {
		opts.Getenv = env
	}
	p, err := declarative.NewPlan(context.Background(), c, f, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p.Print(&out)
	if strings.Contains(out.String(), secretValue) {
		t.Fatalf("the plan prints a secret:\n%s", out.String())
	}
	return p, out.String()
}

func TestApplyExportRoundTrip(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			gh := servertest.Start(t, servertest.Options{Engine: engine, Dev: true})
			c := apiclient.New(gh.URL, servertest.AdminToken)
			ctx := context.Background()

			p, out := plan(t, c, sample, declarative.Options{})
			if p.Changes() != 7 || !strings.Contains(out, "+ connection acme/GitHub (create: ") || !strings.Contains(out, "client_secret (secret)") {
				t.Fatalf("first plan (%d changes):\n%s", p.Changes(), out)
			}
			var secrets bytes.Buffer
			p, _ = plan(t, c, sample, declarative.Options{SecretsOut: &secrets})
			if err := p.Apply(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(secrets.String(), "GATEHOUSE_SECRET_ACME_APP_WIKI_CLIENT_SECRET=gh_cs_") ||
				!strings.Contains(secrets.String(), "GATEHOUSE_SECRET_ACME_WEBHOOK_HTTPS___HOOKS_ACME_EXAMPLE_GATEHOUSE_SECRET=whsec_") {
				t.Errorf("secrets out: %q", secrets.String())
			}
			// The client secret reached the connection, sealed.
			var conn *gatehouse.Connection
			_ = gh.Store.View(ctx, func(tx gatehouse.Tx) error {
				ten, _ := tx.GetTenantBySlug(ctx, "acme")
				cs, _ := tx.ListConnections(ctx, ten.ID)
				for _, x := range cs {
					if x.Name == "GitHub" {
						conn = x
					}
				}
				return nil
			})
			if conn == nil {
				t.Fatal("GitHub connection not created")
			}
			if pt, err := gh.Server.Keyring().Open(conn.Secrets, []byte(conn.ID)); err != nil || !strings.Contains(string(pt), secretValue) {
				t.Fatalf("sealed secrets %q %v", pt, err)
			}

			// Idempotent: the second plan has nothing to do.
			if p, out := plan(t, c, sample, declarative.Options{}); p.Changes() != 0 || !strings.Contains(out, "No changes") {
				t.Fatalf("second plan:\n%s", out)
			}
			// One field changes: the plan names it and only it.
			changed := strings.Replace(sample, "name: Acme", "name: Acme Corp", 1)
			p, out = plan(t, c, changed, declarative.Options{})
			if p.Changes() != 1 || !strings.Contains(out, "~ tenant acme (update: name)") {
				t.Fatalf("changed plan:\n%s", out)
			}
			if err := p.Apply(ctx, nil); err != nil {
				t.Fatal(err)
			}
			// Secrets are re-sent only when asked.
			if p, out := plan(t, c, changed, declarative.Options{UpdateSecrets: true}); p.Changes() != 1 || !strings.Contains(out, "update: client_secret (secret)") {
				t.Fatalf("update-secrets plan:\n%s", out)
			}

			// Export writes references, never the secret, and applies as no change.
			f, err := declarative.Export(ctx, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			var yml bytes.Buffer
			if err := declarative.Write(&yml, f); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(yml.String(), secretValue) || !strings.Contains(yml.String(), "client_secret: ${GATEHOUSE_SECRET_ACME_GITHUB_CLIENT_SECRET}") {
				t.Fatalf("export:\n%s", yml.String())
			}
			if !strings.Contains(yml.String(), "- GitHub") {
				t.Errorf("export names allowed connections by ID, not name:\n%s", yml.String())
			}
			if p, out := plan(t, c, yml.String(), declarative.Options{}); p.Changes() != 0 {
				t.Fatalf("export then plan:\n%s\n%s", out, yml.String())
			}
		})
	}
}

func TestApplyNeedsSecretReference(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{Dev: true})
	c := apiclient.New(gh.URL, servertest.AdminToken)
	p, _ := plan(t, c, sample, declarative.Options{Getenv: func(string) string { return "" }})
	err := p.Apply(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "GH_SECRET is not set") {
		t.Fatalf("apply without the secret: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yml, want string }{
		"unknown key":    {"tenants:\n  - slug: a\n    colour: red\n", "line 3: field colour not found"},
		"literal secret": {"tenants:\n  - slug: a\n    connections:\n      - {name: x, type: oidc, secrets: {client_secret: hunter2}}\n", "must be a reference"},
		"twice":          {"tenants:\n  - slug: a\n  - slug: a\n", "declared twice"},
		"no type":        {"tenants:\n  - slug: a\n    connections:\n      - {name: x}\n", "type is required"},
	} {
		_, err := declarative.Parse(strings.NewReader(tc.yml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the secret", name)
		}
	}
}

// TestApplySAMLPastedMetadataIsIdempotent: pasted IdP metadata is not
// shown back by the API; apply sends it on create, then leaves it alone
// unless asked (--update-secrets), so a second apply has nothing to do.
func TestApplySAMLPastedMetadataIsIdempotent(t *testing.T) {
	gh := servertest.Start(t, servertest.Options{})
	c := apiclient.New(gh.URL, servertest.AdminToken)
	md := strings.ReplaceAll(string(samltest.New("https://idp.acme.example").Metadata()), "\n", "\n            ")
	yml := "tenants:\n  - slug: acme\n    connections:\n      - name: ADFS\n        type: saml\n        config:\n          allow_idp_initiated: true\n          idp_metadata_xml: |\n            " + md + "\n"
	p, _ := plan(t, c, yml, declarative.Options{})
	if err := p.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if p, out := plan(t, c, yml, declarative.Options{}); p.Changes() != 0 {
		t.Fatalf("second plan:\n%s", out)
	}
	if p, out := plan(t, c, yml, declarative.Options{UpdateSecrets: true}); p.Changes() != 1 || !strings.Contains(out, "idp_metadata_xml (write-only)") {
		t.Fatalf("update-secrets plan:\n%s", out)
	} else if err := p.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
