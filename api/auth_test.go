package api

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// fixtures are objects of tenant "beta" that the routes' {id} and
// {user_id} point at.
type fixtures struct {
	user, group, conn, app, apiToken, scimToken, webhook, delivery string
}

func (e *env) fixtures(slug string) fixtures {
	e.t.Helper()
	base := "/api/v1/tenants/" + slug
	var f fixtures
	f.user = e.must(201, "POST", base+"/users", rootToken, map[string]any{"email": "fix@beta.example"})["id"].(string)
	f.group = e.must(201, "POST", base+"/groups", rootToken, map[string]any{"name": "Fixture"})["id"].(string)
	f.conn = e.must(201, "POST", base+"/connections", rootToken, map[string]any{"type": "apitest", "name": "IdP", "url": "https://idp.example"})["id"].(string)
	f.app = e.must(201, "POST", base+"/apps", rootToken, map[string]any{"name": "Wiki", "redirect_uris": []string{"https://wiki.example/cb"}})["id"].(string)
	f.apiToken = e.must(201, "POST", base+"/api-tokens", rootToken, map[string]any{"name": "spare", "role": "tenant_viewer"})["id"].(string)
	f.scimToken = e.must(201, "POST", base+"/scim-tokens", rootToken, map[string]any{"name": "spare"})["id"].(string)
	f.webhook = e.must(201, "POST", base+"/webhooks", rootToken, map[string]any{"url": "https://hooks.example/in"})["id"].(string)
	// The fixture user waits for approval, so the approve route succeeds;
	// a delivery to the fixture webhook failed, so the retry route does.
	ctx := context.Background()
	err := e.store.Update(ctx, func(tx gatehouse.Tx) error {
		t, err := tx.GetTenantBySlug(ctx, slug)
		if err != nil {
			return err
		}
		if f.delivery, err = failedDelivery(ctx, tx, t.ID, f.webhook); err != nil {
			return err
		}
		u, err := tx.GetUser(ctx, t.ID, f.user)
		if err != nil {
			return err
		}
		u.Status = gatehouse.StatusPending
		return tx.UpdateUser(ctx, u)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// path fills a route's pattern for tenant slug.
func (f fixtures) path(rt route, slug string) string {
	p := strings.ReplaceAll(rt.path, "{tenant}", slug)
	p = strings.ReplaceAll(p, "{user_id}", f.user)
	p = strings.ReplaceAll(p, "{delivery}", f.delivery)
	id := map[string]string{"/users/": f.user, "/groups/": f.group, "/connections/": f.conn, "/apps/": f.app,
		"/api-tokens/": f.apiToken, "/scim-tokens/": f.scimToken, "/webhooks/": f.webhook}
	for seg, v := range id {
		if strings.Contains(p, seg+"{id}") {
			p = strings.Replace(p, "{id}", v, 1)
		}
	}
	return p
}

// validBody is a body each write route accepts.
func validBody(rt route) any {
	switch rt.method + " " + strings.TrimPrefix(rt.path, Prefix) {
	case "POST /tenants":
		return map[string]any{"slug": "gamma"}
	case "PATCH /tenants/{tenant}":
		return map[string]any{"name": "Beta Corp"}
	case "POST /tenants/{tenant}/users":
		return map[string]any{"email": "new@beta.example"}
	case "PATCH /tenants/{tenant}/users/{id}":
		return map[string]any{"display_name": "Fix"}
	case "POST /tenants/{tenant}/groups":
		return map[string]any{"name": "New"}
	case "PATCH /tenants/{tenant}/groups/{id}":
		return map[string]any{"name": "Fixture 2"}
	case "POST /tenants/{tenant}/connections":
		return map[string]any{"type": "apitest", "name": "Second", "url": "https://idp2.example"}
	case "PATCH /tenants/{tenant}/connections/{id}":
		return map[string]any{"enabled": false}
	case "POST /tenants/{tenant}/apps":
		return map[string]any{"name": "CRM", "redirect_uris": []string{"https://crm.example/cb"}}
	case "PATCH /tenants/{tenant}/apps/{id}":
		return map[string]any{"name": "Wiki 2"}
	case "POST /tenants/{tenant}/api-tokens":
		return map[string]any{"name": "more", "role": "tenant_admin"}
	case "POST /tenants/{tenant}/scim-tokens":
		return map[string]any{"name": "more"}
	case "POST /tenants/{tenant}/users/import":
		return map[string]any{"rows": []map[string]any{{"email": "imported@beta.example", "groups": []string{"Imported"}}}}
	case "POST /tenants/{tenant}/webhooks":
		return map[string]any{"url": "https://hooks.example/more", "events": []string{"user.*"}}
	case "PATCH /tenants/{tenant}/webhooks/{id}":
		return map[string]any{"enabled": false}
	}
	return nil
}

// TestAuthEveryRoute walks the routing table: for every route, no token
// and a bad token get 401 with a Bearer challenge; a tenant viewer gets 403
// on writes; a token of tenant A on tenant B's URL gets 404; nothing is
// written by a refused request; the superuser succeeds.
func TestAuthEveryRoute(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		e.tenant("alpha")
		betaID := e.tenant("beta")
		f := e.fixtures("beta")
		alphaAdmin := e.token("alpha", gatehouse.RoleTenantAdmin)
		betaViewer := e.token("beta", gatehouse.RoleTenantViewer)
		betaAdmin := e.token("beta", gatehouse.RoleTenantAdmin)
		auditBefore, usersBefore := e.counts(betaID)

		rts := routes()
		for _, rt := range rts {
			name := rt.method + " " + rt.path
			path := f.path(rt, "beta")
			body := validBody(rt)
			if rt.access == accessPublic {
				if r := e.do(rt.method, path, "", nil); r.Status != 200 {
					t.Errorf("%s without token: %d", name, r.Status)
				}
				continue
			}
			for _, tok := range []string{"", "wrong", "gh_api_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", rootToken + "x"} {
				r := e.do(rt.method, path, tok, body)
				if code, _ := r.errCode(); r.Status != 401 || code != "unauthorized" || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s with token %q: %d %s", name, tok, r.Status, r.Body)
				}
			}
			// Unknown tenant: 404 for the superuser too, 401 first without a token.
			if strings.Contains(rt.path, "{tenant}") {
				if r := e.do(rt.method, f.path(rt, "nope"), "", body); r.Status != 401 {
					t.Errorf("%s unknown tenant without token: %d", name, r.Status)
				}
				if r := e.do(rt.method, f.path(rt, "nope"), rootToken, body); r.Status != 404 {
					t.Errorf("%s unknown tenant: %d", name, r.Status)
				}
				for _, ref := range []string{"beta", betaID} {
					r := e.do(rt.method, f.path(rt, ref), alphaAdmin, body)
					if code, _ := r.errCode(); r.Status != 404 || code != "not_found" {
						t.Errorf("%s with tenant alpha's token on %s: %d %s", name, ref, r.Status, r.Body)
					}
				}
			}
			write := rt.method != "GET"
			switch {
			case rt.access == accessSuperuser:
				for _, tok := range []string{betaViewer, betaAdmin} {
					if r := e.do(rt.method, path, tok, body); r.Status != 403 && r.Status != 404 {
						t.Errorf("%s with a tenant token: %d, want 403", name, r.Status)
					}
				}
			case write:
				r := e.do(rt.method, path, betaViewer, body)
				if code, _ := r.errCode(); r.Status != 403 || code != "forbidden" {
					t.Errorf("%s as viewer: %d %s", name, r.Status, r.Body)
				}
			default:
				if r := e.do(rt.method, path, betaViewer, nil); r.Status != 200 {
					t.Errorf("%s as viewer: %d %s", name, r.Status, r.Body)
				}
			}
		}
		if a, u := e.counts(betaID); a != auditBefore || u != usersBefore {
			t.Fatalf("refused requests wrote: audit %d→%d, users %d→%d", auditBefore, a, usersBefore, u)
		}

		// The superuser may do everything; deletes run last, the tenant's
		// own deletion at the very end.
		sort.SliceStable(rts, func(i, j int) bool { return rank(rts[i]) < rank(rts[j]) })
		for _, rt := range rts {
			if rt.access == accessPublic {
				continue
			}
			r := e.do(rt.method, f.path(rt, "beta"), rootToken, validBody(rt))
			if r.Status >= 300 {
				t.Errorf("%s %s as superuser: %d %s", rt.method, rt.path, r.Status, r.Body)
			}
		}
	})
}

func rank(rt route) int {
	switch {
	case rt.method == "DELETE" && rt.path == Prefix+"/tenants/{tenant}":
		return 3
	case rt.method == "DELETE" && strings.HasSuffix(rt.path, "/members/{user_id}"):
		return 1 // before the user and the group go
	case rt.method == "DELETE":
		return 2
	}
	return 0
}

func TestTenantAdminWritesOwnTenant(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		e.tenant("beta")
		admin := e.token("beta", gatehouse.RoleTenantAdmin)
		u := e.must(201, "POST", "/api/v1/tenants/beta/users", admin, map[string]any{"email": "x@beta.example"})
		evs := e.must(200, "GET", "/api/v1/tenants/beta/audit?action=user.", admin, nil)["items"].([]any)
		if len(evs) != 1 {
			t.Fatalf("audit %v", evs)
		}
		ev := evs[0].(map[string]any)
		if ev["actor_type"] != "api_token" || ev["target_id"] != u["id"] || ev["request_id"] != "req-test-0001" {
			t.Fatalf("audit event %v", ev)
		}
	})
}

func TestNoRoute(t *testing.T) {
	e := newEnv(t, "sqlite")
	if r := e.do("GET", "/api/v1/nothing", "", nil); r.Status != 401 {
		t.Fatalf("unknown route without token: %d", r.Status)
	}
	if r := e.do("GET", "/api/v1/nothing", rootToken, nil); r.Status != 404 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("unknown route: %d %s", r.Status, r.Body)
	}
	r := e.do("PUT", "/api/v1/tenants", rootToken, "{}")
	if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, POST" {
		t.Fatalf("wrong method: %d %q %s", r.Status, r.Header.Get("Allow"), r.Body)
	}
}

// failedDelivery makes a delivery to webhookID that gave up.
func failedDelivery(ctx context.Context, tx gatehouse.Tx, tenantID, webhookID string) (string, error) {
	now := time.Now()
	if err := tx.AppendOutbox(ctx, &gatehouse.OutboxEvent{TenantID: tenantID, Type: "user.updated"}); err != nil {
		return "", err
	}
	if _, err := tx.DispatchOutbox(ctx, 1000, now, func(*gatehouse.OutboxEvent) ([]byte, error) { return []byte("{}"), nil }); err != nil {
		return "", err
	}
	ds, err := tx.ClaimWebhookDeliveries(ctx, now, time.Minute, 1000)
	if err != nil {
		return "", err
	}
	for _, d := range ds {
		if d.WebhookID == webhookID {
			d.Status = gatehouse.DeliveryFailed
			return d.ID, tx.RecordWebhookAttempt(ctx, d)
		}
	}
	return "", fmt.Errorf("no delivery to %s", webhookID)
}
