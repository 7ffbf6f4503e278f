package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/provision"
	"github.com/gatehouse-sso/gatehouse/secret"
)

func TestConnectionsRoundTrip(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme", "acme.com")
		e.must(201, "POST", "/api/v1/tenants/acme/groups", rootToken, map[string]any{"name": "Everyone"})
		c := e.must(201, "POST", "/api/v1/tenants/acme/connections", rootToken, map[string]any{
			"type": "apitest", "name": "Okta", "url": "https://okta.example", "secret": "s3cr3t-value",
			"jit": map[string]any{"default_groups": []string{"Everyone"}, "allowed_domains": []string{"ACME.com", "contractor.example"}},
		})
		id := c["id"].(string)
		jit := c["jit"].(map[string]any)
		if c["type"] != "apitest" || c["name"] != "Okta" || c["enabled"] != true || c["url"] != "https://okta.example" ||
			c["redirect_uri"] != "https://sso.example.test/sso/apitest/"+id+"/callback" {
			t.Fatalf("created %v", c)
		}
		// Absent jit fields take DefaultJITPolicy's values.
		if jit["enabled"] != true || jit["update_profile"] != true || !slices.Equal(toStrings(jit["allowed_domains"]), []string{"acme.com", "contractor.example"}) {
			t.Fatalf("jit %v", jit)
		}
		if strings.Contains(string(mustJSON(c)), "s3cr3t") {
			t.Fatal("secret returned")
		}
		// The secret is sealed, bound to the connection id.
		ctx := context.Background()
		var stored *gatehouse.Connection
		err := e.store.View(ctx, func(tx gatehouse.Tx) (err error) {
			stored, err = tx.GetConnection(ctx, tid, id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(stored.Secrets), "s3cr3t") {
			t.Fatal("secret stored in the clear")
		}
		pt, err := e.keyring.Open(stored.Secrets, []byte(id))
		if err != nil || !strings.Contains(string(pt), "s3cr3t-value") {
			t.Fatalf("open sealed secret: %s %v", pt, err)
		}
		// PATCH: common fields only leave config and secrets alone; jit
		// merges over the current policy.
		p := e.must(200, "PATCH", "/api/v1/tenants/acme/connections/"+id, rootToken, map[string]any{
			"name": "Okta SSO", "jit": map[string]any{"require_approval": true}})
		pj := p["jit"].(map[string]any)
		if p["name"] != "Okta SSO" || pj["require_approval"] != true || !slices.Equal(toStrings(pj["default_groups"]), []string{"Everyone"}) {
			t.Fatalf("patched %v", p)
		}
		p = e.must(200, "PATCH", "/api/v1/tenants/acme/connections/"+id, rootToken, map[string]any{"url": "https://okta2.example"})
		if p["url"] != "https://okta2.example" {
			t.Fatalf("patched url %v", p)
		}
		err = e.store.View(ctx, func(tx gatehouse.Tx) (err error) {
			stored, err = tx.GetConnection(ctx, tid, id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := e.keyring.Open(stored.Secrets, []byte(id)); err != nil || !strings.Contains(string(pt), "s3cr3t-value") {
			t.Fatalf("secret lost on update: %s %v", pt, err)
		}
		if r := e.do("PATCH", "/api/v1/tenants/acme/connections/"+id, rootToken, map[string]any{"type": "oidc"}); r.Status != 400 {
			t.Fatalf("type changed: %d", r.Status)
		}
		l := e.must(200, "GET", "/api/v1/tenants/acme/connections", rootToken, nil)
		if len(l["items"].([]any)) != 1 {
			t.Fatalf("list %v", l)
		}
		e.must(200, "GET", "/api/v1/tenants/acme/connections/"+id, rootToken, nil)
		// Deleting removes links and sessions, keeps users.
		u := e.must(201, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ana@acme.com"})
		err = e.store.Update(ctx, func(tx gatehouse.Tx) error {
			return tx.CreateIdentity(ctx, &gatehouse.FederatedIdentity{TenantID: tid, ConnectionID: id, Subject: "sub-1", UserID: u["id"].(string)})
		})
		if err != nil {
			t.Fatal(err)
		}
		e.must(204, "DELETE", "/api/v1/tenants/acme/connections/"+id, rootToken, nil)
		e.must(404, "GET", "/api/v1/tenants/acme/connections/"+id, rootToken, nil)
		e.must(200, "GET", "/api/v1/tenants/acme/users/"+u["id"].(string), rootToken, nil)
		err = e.store.View(ctx, func(tx gatehouse.Tx) error {
			_, err := tx.GetIdentity(ctx, tid, id, "sub-1")
			return err
		})
		if !gatehouse.IsCode(err, gatehouse.ENOTFOUND) {
			t.Fatalf("link survived: %v", err)
		}
		evs := auditActions(t, e, "acme")
		for _, want := range []string{"connection.created", "connection.updated", "connection.deleted"} {
			if !slices.Contains(evs, want) {
				t.Errorf("audit lacks %s: %v", want, evs)
			}
		}
	})
}

func TestAppsRoundTrip(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme")
		e.must(201, "POST", "/api/v1/tenants/acme/groups", rootToken, map[string]any{"name": "Staff"})
		a := e.must(201, "POST", "/api/v1/tenants/acme/apps", rootToken, map[string]any{
			"name": "Wiki", "redirect_uris": []string{"https://wiki.example/cb", "http://127.0.0.1:8000/cb"}, "allowed_groups": []string{"staff"}})
		id, sec := a["id"].(string), a["client_secret"].(string)
		if a["client_id"] == "" || a["id_token_signing_alg"] != "RS256" || !slices.Equal(toStrings(a["allowed_groups"]), []string{"Staff"}) ||
			a["issuer"] != "https://sso.example.test/t/acme" {
			t.Fatalf("created %v", a)
		}
		if _, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sec, ClientSecretPrefix)); err != nil || strings.ContainsAny(sec, "+/=") {
			t.Fatalf("secret not URL-safe: %q", sec)
		}
		ctx := context.Background()
		hash := func() []byte {
			var app *gatehouse.App
			if err := e.store.View(ctx, func(tx gatehouse.Tx) (err error) { app, err = tx.GetApp(ctx, tid, id); return err }); err != nil {
				t.Fatal(err)
			}
			return app.SecretHash
		}
		if !secret.Matches(sec, hash()) {
			t.Fatal("stored hash does not match the secret")
		}
		g := e.must(200, "GET", "/api/v1/tenants/acme/apps/"+id, rootToken, nil)
		if _, ok := g["client_secret"]; ok {
			t.Fatal("secret shown again")
		}
		r := e.must(200, "POST", "/api/v1/tenants/acme/apps/"+id+"/rotate-secret", rootToken, nil)
		if r["client_secret"] == sec || !secret.Matches(r["client_secret"].(string), hash()) || secret.Matches(sec, hash()) {
			t.Fatal("rotation did not replace the secret")
		}
		p := e.must(200, "PATCH", "/api/v1/tenants/acme/apps/"+id, rootToken, map[string]any{"id_token_signing_alg": "EdDSA", "public": true, "redirect_uris": []string{"https://wiki.example/cb"}})
		if p["id_token_signing_alg"] != "EdDSA" || p["public"] != true || len(hash()) != 0 {
			t.Fatalf("patched %v", p)
		}
		if r := e.do("POST", "/api/v1/tenants/acme/apps/"+id+"/rotate-secret", rootToken, nil); r.Status != 409 {
			t.Fatalf("public app rotation: %d", r.Status)
		}
		if l := e.must(200, "GET", "/api/v1/tenants/acme/apps", rootToken, nil); len(l["items"].([]any)) != 1 {
			t.Fatalf("list %v", l)
		}
		e.must(204, "DELETE", "/api/v1/tenants/acme/apps/"+id, rootToken, nil)
		e.must(404, "GET", "/api/v1/tenants/acme/apps/"+id, rootToken, nil)
		evs := auditActions(t, e, "acme")
		for _, want := range []string{"app.created", "app.secret_rotated", "app.updated", "app.deleted"} {
			if !slices.Contains(evs, want) {
				t.Errorf("audit lacks %s: %v", want, evs)
			}
		}
	})
}

func TestKeyRotation(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		tid := e.tenant("acme")
		first := e.must(200, "POST", "/api/v1/tenants/acme/keys/rotate", rootToken, nil)["items"].([]any)
		if len(first) != 1 {
			t.Fatalf("first rotation: %v", first)
		}
		k1 := first[0].(map[string]any)
		if k1["alg"] != "RS256" || k1["retired_at"] != nil {
			t.Fatalf("first key %v", k1)
		}
		var jwk map[string]any
		if err := json.Unmarshal(mustJSON(k1["public_jwk"]), &jwk); err != nil || jwk["kid"] != k1["id"] || jwk["d"] != nil || jwk["n"] == nil {
			t.Fatalf("public jwk %v %v", jwk, err)
		}
		l := e.must(200, "POST", "/api/v1/tenants/acme/keys/rotate", rootToken, nil)["items"].([]any)
		active, retired := 0, 0
		for _, it := range l {
			k := it.(map[string]any)
			switch {
			case k["id"] == k1["id"] && k["retired_at"] != nil && k["not_after"] != nil:
				retired++
			case k["retired_at"] == nil:
				active++
			}
		}
		if active != 1 || retired != 1 {
			t.Fatalf("after the second rotation: %v", l)
		}
		if len(e.must(200, "GET", "/api/v1/tenants/acme/keys", rootToken, nil)["items"].([]any)) != 2 {
			t.Fatal("keys list")
		}
		ctx := context.Background()
		err := e.store.View(ctx, func(tx gatehouse.Tx) error {
			ks, err := tx.ListSigningKeys(ctx, tid)
			for _, k := range ks {
				if _, err := e.keyring.Open(k.Private, []byte(k.ID)); err != nil {
					t.Errorf("key %s: %v", k.ID, err)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(auditActions(t, e, "acme"), "signing_key.rotated") {
			t.Error("rotation not audited")
		}
	})
}

// TestOutboxEvents: user and group writes queue the same webhook events
// as JIT and SCIM, in the change's transaction.
func TestOutboxEvents(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		e.tenant("acme")
		// The outbox is written only for a tenant with an enabled webhook.
		e.must(201, "POST", "/api/v1/tenants/acme/webhooks", rootToken, map[string]any{"url": "https://hooks.example/in"})
		u := e.must(201, "POST", "/api/v1/tenants/acme/users", rootToken, map[string]any{"email": "ana@acme.com"})["id"].(string)
		g := e.must(201, "POST", "/api/v1/tenants/acme/groups", rootToken, map[string]any{"name": "Staff"})["id"].(string)
		e.must(204, "PUT", "/api/v1/tenants/acme/groups/"+g+"/members/"+u, rootToken, nil)
		e.must(200, "PATCH", "/api/v1/tenants/acme/users/"+u, rootToken, map[string]any{"active": false})
		e.must(204, "DELETE", "/api/v1/tenants/acme/users/"+u, rootToken, nil)
		ctx := context.Background()
		var types []string
		err := e.store.View(ctx, func(tx gatehouse.Tx) error {
			evs, err := tx.ListPendingOutbox(ctx, 100)
			for _, ev := range evs {
				types = append(types, ev.Type)
				var p map[string]any
				if err := json.Unmarshal(ev.Payload, &p); err != nil {
					t.Errorf("%s payload: %v", ev.Type, err)
				}
				if ev.Type == "group.updated" && p["members_added"] == nil {
					t.Errorf("group.updated payload %s", ev.Payload)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"user.created", "group.created", "group.updated", "user.deactivated", "user.deleted"}
		if !slices.Equal(types, want) {
			t.Fatalf("outbox %v, want %v", types, want)
		}
	})
}

// TestApproveThroughResolver: the JIT resolver approves, as the server
// wires it.
func TestApproveThroughResolver(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		e = e.with(func(c *Config) { c.Provisioner = provision.New(e.store, provision.Options{}) })
		tid := e.tenant("acme")
		ctx := context.Background()
		u := &gatehouse.User{ID: gatehouse.NewID("usr"), TenantID: tid, Email: "p@acme.com", Username: "p", Status: gatehouse.StatusPending, Source: gatehouse.SourceJIT}
		if err := e.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
			t.Fatal(err)
		}
		a := e.must(200, "POST", "/api/v1/tenants/acme/users/"+u.ID+"/approve", rootToken, nil)
		if a["status"] != "active" || a["active"] != true {
			t.Fatalf("approve: %v", a)
		}
		if r := e.do("POST", "/api/v1/tenants/acme/users/"+u.ID+"/approve", rootToken, nil); r.Status != 409 {
			t.Fatalf("approve twice: %d %s", r.Status, r.Body)
		}
		if r := e.do("POST", "/api/v1/tenants/acme/users/usr_nope/approve", rootToken, nil); r.Status != 404 {
			t.Fatalf("approve unknown: %d %s", r.Status, r.Body)
		}
		evs := e.must(200, "GET", "/api/v1/tenants/acme/audit?action=user.approved", rootToken, nil)["items"].([]any)
		if len(evs) != 1 || evs[0].(map[string]any)["actor_type"] != "superuser" {
			t.Fatalf("audit %v", evs)
		}
	})
}
