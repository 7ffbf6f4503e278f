package api

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

func TestTenantsRoundTrip(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		m := e.must(201, "POST", "/api/v1/tenants", rootToken, map[string]any{"slug": "acme", "name": "Acme",
			"domains": []string{"Acme.COM", "acme.com", " eu.acme.com"}, "support_contact": "it@acme.com", "admin_groups": []string{"IT"}})
		id := m["id"].(string)
		if !strings.HasPrefix(id, "ten_") || !slices.Equal(toStrings(m["domains"]), []string{"acme.com", "eu.acme.com"}) {
			t.Fatalf("created %v", m)
		}
		for _, ref := range []string{"acme", id, "ACME"} {
			g := e.must(200, "GET", "/api/v1/tenants/"+ref, rootToken, nil)
			if g["id"] != id || g["support_contact"] != "it@acme.com" || !slices.Equal(toStrings(g["admin_groups"]), []string{"IT"}) {
				t.Fatalf("GET %s: %v", ref, g)
			}
		}
		p := e.must(200, "PATCH", "/api/v1/tenants/acme", rootToken, map[string]any{"name": "Acme Inc", "session_idle_seconds": 3600})
		if p["name"] != "Acme Inc" || p["session_idle_seconds"] != 3600.0 || p["slug"] != "acme" {
			t.Fatalf("PATCH: %v", p)
		}
		// A domain belongs to one tenant.
		r := e.do("POST", "/api/v1/tenants", rootToken, map[string]any{"slug": "other", "domains": []string{"ACME.com"}})
		if code, field := r.errCode(); r.Status != 409 || code != "conflict" || field != "domains" {
			t.Fatalf("duplicate domain: %d %s", r.Status, r.Body)
		}
		if r := e.do("POST", "/api/v1/tenants", rootToken, map[string]any{"slug": "acme"}); r.Status != 409 {
			t.Fatalf("duplicate slug: %d %s", r.Status, r.Body)
		}
		// A tenant admin may edit its tenant but not vouch for domains.
		admin := e.token("acme", gatehouse.RoleTenantAdmin)
		e.must(200, "PATCH", "/api/v1/tenants/acme", admin, map[string]any{"support_contact": "help@acme.com", "domains": []string{"eu.acme.com", "ACME.com"}})
		if r := e.do("PATCH", "/api/v1/tenants/acme", admin, map[string]any{"domains": []string{"gmail.com"}}); r.Status != 403 {
			t.Fatalf("tenant admin changed domains: %d %s", r.Status, r.Body)
		}
		e.tenant("beta")
		l := e.must(200, "GET", "/api/v1/tenants?limit=1", rootToken, nil)
		if len(l["items"].([]any)) != 1 || l["next_cursor"] == "" {
			t.Fatalf("page 1: %v", l)
		}
		l2 := e.must(200, "GET", "/api/v1/tenants?limit=1&cursor="+l["next_cursor"].(string), rootToken, nil)
		if len(l2["items"].([]any)) != 1 || l2["items"].([]any)[0].(map[string]any)["slug"] == l["items"].([]any)[0].(map[string]any)["slug"] {
			t.Fatalf("page 2: %v", l2)
		}
		e.must(204, "DELETE", "/api/v1/tenants/beta", rootToken, nil)
		e.must(404, "GET", "/api/v1/tenants/beta", rootToken, nil)
		evs := auditActions(t, e, "acme")
		for _, want := range []string{"tenant.created", "tenant.updated", "api_token.created"} {
			if !slices.Contains(evs, want) {
				t.Errorf("audit lacks %s: %v", want, evs)
			}
		}
	})
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func auditActions(t *testing.T, e *env, tenant string) []string {
	t.Helper()
	l := e.must(200, "GET", "/api/v1/tenants/"+tenant+"/audit?limit=1000", rootToken, nil)
	var out []string
	for _, it := range l["items"].([]any) {
		out = append(out, it.(map[string]any)["action"].(string))
	}
	return out
}

func TestUsersRoundTrip(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme", "acme.com")
		u := e.must(201, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "Ana@Acme.com", "display_name": "Ana A", "given_name": "Ana"})
		id := u["id"].(string)
		if u["username"] != "ana" || u["source"] != "admin" || u["status"] != "active" || u["active"] != true || u["email"] != "Ana@Acme.com" {
			t.Fatalf("created %v", u)
		}
		for _, k := range []string{"id", "email", "username", "display_name", "given_name", "family_name", "status", "active", "source", "external_id", "groups", "created_at", "updated_at", "last_login_at"} {
			if _, ok := u[k]; !ok {
				t.Errorf("user JSON lacks %q", k)
			}
		}
		// Same email in any case: 409 naming the field.
		r := e.do("POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ANA@acme.COM"})
		if code, field := r.errCode(); r.Status != 409 || code != "conflict" || field != "email" {
			t.Fatalf("duplicate email: %d %s", r.Status, r.Body)
		}
		// A second "ana" gets a free username.
		u2 := e.must(201, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ana@contractor.example"})
		if u2["username"] != "ana2" {
			t.Fatalf("derived username %v", u2["username"])
		}
		l := e.must(200, "GET", "/api/v1/tenants/acme/users?email=ANA@ACME.COM", rootToken, nil)
		if items := l["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id {
			t.Fatalf("by email: %v", l)
		}
		if _, ok := l["next_cursor"]; !ok {
			t.Fatal("list lacks next_cursor")
		}
		l = e.must(200, "GET", "/api/v1/tenants/acme/users?q=contractor", rootToken, nil)
		if len(l["items"].([]any)) != 1 {
			t.Fatalf("by q: %v", l)
		}
		// Deactivation ends the user's sessions in the same transaction.
		ctx := context.Background()
		now := time.Now()
		err := e.store.Update(ctx, func(tx gatehouse.Tx) error {
			return tx.CreateSession(ctx, &gatehouse.Session{ID: secret.DigestString("cookie"), TenantID: tid, UserID: id,
				AuthTime: now, CreatedAt: now, LastSeenAt: now, IdleExpiry: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)})
		})
		if err != nil {
			t.Fatal(err)
		}
		rt := &gatehouse.OPRefreshToken{ID: gatehouse.NewID("ort"), TenantID: tid, Hash: secret.Digest("refresh"), ClientID: "app_x",
			UserID: id, GrantID: "grant", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := e.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateOPRefreshToken(ctx, rt) }); err != nil {
			t.Fatal(err)
		}
		d := e.must(200, "PATCH", "/api/v1/tenants/acme/users/"+id, rootToken, map[string]any{"active": false})
		if d["status"] != "deactivated" || d["active"] != false {
			t.Fatalf("deactivate: %v", d)
		}
		err = e.store.View(ctx, func(tx gatehouse.Tx) error {
			_, err := tx.GetSession(ctx, secret.DigestString("cookie"))
			return err
		})
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			t.Fatalf("session survived deactivation: %v", err)
		}
		err = e.store.View(ctx, func(tx gatehouse.Tx) error {
			got, err := tx.GetOPRefreshToken(ctx, tid, secret.Digest("refresh"))
			if err == nil && got.RevokedAt == nil {
				t.Error("refresh token survived deactivation")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		l = e.must(200, "GET", "/api/v1/tenants/acme/users?status=deactivated", rootToken, nil)
		if len(l["items"].([]any)) != 1 {
			t.Fatalf("deactivated users are listed: %v", l)
		}
		e.must(200, "PATCH", "/api/v1/tenants/acme/users/"+id, rootToken, map[string]any{"status": "active", "family_name": "Alves"})
		// If-Match with a stale version: 412.
		g := e.do("GET", "/api/v1/tenants/acme/users/"+id, rootToken, nil)
		req := e.do("PATCH", "/api/v1/tenants/acme/users/"+id, rootToken, map[string]any{"display_name": "x"})
		if req.Status != 200 || g.Header.Get("ETag") == "" {
			t.Fatalf("patch %d etag %q", req.Status, g.Header.Get("ETag"))
		}
		stale := e.withHeader("If-Match", g.Header.Get("ETag")).do("PATCH", "/api/v1/tenants/acme/users/"+id, rootToken, map[string]any{"display_name": "y"})
		if code, _ := stale.errCode(); stale.Status != 412 || code != "precondition_failed" {
			t.Fatalf("stale If-Match: %d %s", stale.Status, stale.Body)
		}
		// Delete leaves a tombstone that blocks the email until purged.
		e.must(204, "DELETE", "/api/v1/tenants/acme/users/"+id, rootToken, nil)
		e.must(404, "GET", "/api/v1/tenants/acme/users/"+id, rootToken, nil)
		if r := e.do("POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ana@acme.com"}); r.Status != 409 {
			t.Fatalf("tombstone email reused: %d %s", r.Status, r.Body)
		}
		e.must(204, "DELETE", "/api/v1/tenants/acme/users/"+id+"?purge=true", rootToken, nil)
		e.must(201, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ana@acme.com"})
		evs := auditActions(t, e, "acme")
		for _, want := range []string{"user.created", "user.deactivated", "user.reactivated", "user.updated", "user.deleted", "user.purged"} {
			if !slices.Contains(evs, want) {
				t.Errorf("audit lacks %s: %v", want, evs)
			}
		}
	})
}

func TestApprove(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme")
		ctx := context.Background()
		u := &gatehouse.User{ID: gatehouse.NewID("usr"), TenantID: tid, Email: "p@acme.com", Username: "p", Status: gatehouse.StatusPending, Source: gatehouse.SourceJIT}
		if err := e.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
			t.Fatal(err)
		}
		l := e.must(200, "GET", "/api/v1/tenants/acme/users?status=pending", rootToken, nil)
		if len(l["items"].([]any)) != 1 {
			t.Fatalf("pending users are listed: %v", l)
		}
		a := e.must(200, "POST", "/api/v1/tenants/acme/users/"+u.ID+"/approve", rootToken, nil)
		if a["status"] != "active" || a["source"] != "jit" {
			t.Fatalf("approve: %v", a)
		}
		if r := e.do("POST", "/api/v1/tenants/acme/users/"+u.ID+"/approve", rootToken, nil); r.Status != 409 {
			t.Fatalf("approve twice: %d", r.Status)
		}
	})
}

func TestGroupsAndMembers(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme")
		u := e.must(201, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "bo@acme.com"})
		uid := u["id"].(string)
		g := e.must(201, "POST", "/api/v1/tenants/acme/groups", rootToken, map[string]any{"name": "Engineering"})
		gid := g["id"].(string)
		if r := e.do("POST", "/api/v1/tenants/acme/groups", rootToken, map[string]any{"name": "engineering"}); r.Status != 409 {
			t.Fatalf("duplicate group name: %d", r.Status)
		}
		e.must(204, "PUT", "/api/v1/tenants/acme/groups/"+gid+"/members/"+uid, rootToken, nil)
		e.must(204, "PUT", "/api/v1/tenants/acme/groups/"+gid+"/members/"+uid, rootToken, nil) // idempotent
		// A SCIM-managed membership of the same pair is shown apart.
		ctx := context.Background()
		err := e.store.Update(ctx, func(tx gatehouse.Tx) error {
			return tx.AddMembership(ctx, &gatehouse.Membership{TenantID: tid, GroupID: gid, UserID: uid, ManagedBy: gatehouse.ManagedBySCIM, CreatedAt: time.Now()})
		})
		if err != nil {
			t.Fatal(err)
		}
		m := e.must(200, "GET", "/api/v1/tenants/acme/groups/"+gid+"/members", rootToken, nil)
		var managers []string
		for _, it := range m["items"].([]any) {
			managers = append(managers, it.(map[string]any)["managed_by"].(string))
		}
		slices.Sort(managers)
		if !slices.Equal(managers, []string{"admin", "scim"}) {
			t.Fatalf("members %v", m)
		}
		got := e.must(200, "GET", "/api/v1/tenants/acme/users/"+uid, rootToken, nil)
		if !slices.Equal(toStrings(got["groups"]), []string{"Engineering"}) {
			t.Fatalf("user groups %v", got["groups"])
		}
		l := e.must(200, "GET", "/api/v1/tenants/acme/users?group=Engineering", rootToken, nil)
		if len(l["items"].([]any)) != 1 {
			t.Fatalf("by group: %v", l)
		}
		// Removing the admin membership leaves SCIM's.
		e.must(204, "DELETE", "/api/v1/tenants/acme/groups/"+gid+"/members/"+uid, rootToken, nil)
		m = e.must(200, "GET", "/api/v1/tenants/acme/groups/"+gid+"/members", rootToken, nil)
		if items := m["items"].([]any); len(items) != 1 || items[0].(map[string]any)["managed_by"] != "scim" {
			t.Fatalf("after removal %v", m)
		}
		p := e.must(200, "PATCH", "/api/v1/tenants/acme/groups/"+gid, rootToken, map[string]any{"name": "Eng"})
		if p["name"] != "Eng" {
			t.Fatalf("rename %v", p)
		}
		e.must(200, "GET", "/api/v1/tenants/acme/groups/Eng", rootToken, nil) // by name
		gl := e.must(200, "GET", "/api/v1/tenants/acme/groups", rootToken, nil)
		if len(gl["items"].([]any)) != 1 {
			t.Fatalf("groups %v", gl)
		}
		e.must(204, "DELETE", "/api/v1/tenants/acme/groups/"+gid, rootToken, nil)
		e.must(404, "GET", "/api/v1/tenants/acme/groups/"+gid, rootToken, nil)
		evs := auditActions(t, e, "acme")
		for _, want := range []string{"group.created", "group.member_added", "group.member_removed", "group.updated", "group.deleted"} {
			if !slices.Contains(evs, want) {
				t.Errorf("audit lacks %s: %v", want, evs)
			}
		}
	})
}

func TestTokens(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		e.tenant("acme")
		c := e.must(201, "POST", "/api/v1/tenants/acme/api-tokens", rootToken, map[string]any{"name": "ci", "role": "tenant_viewer"})
		tok := c["token"].(string)
		if !strings.HasPrefix(tok, "gh_api_") || c["id"] == "" || c["role"] != "tenant_viewer" {
			t.Fatalf("created %v", c)
		}
		w := e.must(200, "GET", "/api/v1/whoami", tok, nil)
		if w["role"] != "tenant_viewer" || w["tenant_slug"] != "acme" {
			t.Fatalf("whoami %v", w)
		}
		l := e.must(200, "GET", "/api/v1/tenants/acme/api-tokens", tok, nil)
		items := l["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["token"] != nil || items[0].(map[string]any)["last_used_at"] == nil {
			t.Fatalf("list %v", l)
		}
		if strings.Contains(string(e.do("GET", "/api/v1/tenants/acme/api-tokens", rootToken, nil).Body), tok) {
			t.Fatal("token shown again")
		}
		if r := e.do("POST", "/api/v1/tenants/acme/api-tokens", rootToken, map[string]any{"name": "x", "role": "superuser"}); r.Status != 400 {
			t.Fatalf("superuser token minted: %d", r.Status)
		}
		e.must(204, "DELETE", "/api/v1/tenants/acme/api-tokens/"+c["id"].(string), rootToken, nil)
		if r := e.do("GET", "/api/v1/whoami", tok, nil); r.Status != 401 {
			t.Fatalf("revoked token works: %d", r.Status)
		}
		// SCIM tokens: connection_id must be a connection of this tenant.
		if r := e.do("POST", "/api/v1/tenants/acme/scim-tokens", rootToken, map[string]any{"name": "okta", "connection_id": "con_nope"}); r.Status != 400 {
			t.Fatalf("scim token with unknown connection: %d %s", r.Status, r.Body)
		}
		con := e.must(201, "POST", "/api/v1/tenants/acme/connections", rootToken, map[string]any{"type": "apitest", "name": "Okta", "url": "https://okta.example"})
		s := e.must(201, "POST", "/api/v1/tenants/acme/scim-tokens", rootToken, map[string]any{"name": "okta", "connection_id": con["id"]})
		if !strings.HasPrefix(s["token"].(string), "gh_scim_") || s["scim_base_url"] != "https://sso.example.test/scim/v2" {
			t.Fatalf("scim token %v", s)
		}
		ctx := context.Background()
		err := e.store.View(ctx, func(tx gatehouse.Tx) error {
			st, err := tx.GetSCIMTokenByHash(ctx, secret.Digest(s["token"].(string)))
			if err == nil && st.ConnectionID != con["id"] {
				t.Errorf("stored connection %q", st.ConnectionID)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		sl := e.must(200, "GET", "/api/v1/tenants/acme/scim-tokens", rootToken, nil)
		if len(sl["items"].([]any)) != 1 || strings.Contains(string(mustJSON(sl)), s["token"].(string)) {
			t.Fatalf("scim list %v", sl)
		}
		e.must(204, "DELETE", "/api/v1/tenants/acme/scim-tokens/"+s["id"].(string), rootToken, nil)
		e.must(404, "DELETE", "/api/v1/tenants/acme/scim-tokens/"+s["id"].(string), rootToken, nil)
		evs := auditActions(t, e, "acme")
		for _, want := range []string{"api_token.created", "api_token.revoked", "scim_token.created", "scim_token.revoked"} {
			if !slices.Contains(evs, want) {
				t.Errorf("audit lacks %s: %v", want, evs)
			}
		}
	})
}
