package scim_test

import (
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/scim"
)

func TestAuth(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		e.doToken("", "GET", "/scim/v2/Users", nil).wantError(t, 401, "")
		r := e.doToken("gh_scim_nope", "GET", "/scim/v2/Users", nil)
		r.wantError(t, 401, "")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		e.doToken("gh_api_"+e.token[len("gh_scim_"):], "GET", "/scim/v2/Users", nil).wantError(t, 401, "")

		// The tenant comes from the token: tenant B cannot see A's users.
		id := e.createUser("ana@acme.com", nil)
		_, tokB, _ := e.newTenant("other")
		e.doToken(tokB, "GET", "/scim/v2/Users/"+id, nil).wantError(t, 404, "")
		r = e.doToken(tokB, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "ana@acme.com"`), nil).want(t, 200)
		if r.doc["totalResults"].(float64) != 0 {
			t.Errorf("tenant B sees A's user: %s", r.raw)
		}
		e.doToken(tokB, "DELETE", "/scim/v2/Users/"+id, nil).wantError(t, 404, "")

		// last_used_at is written at most once a minute.
		lastUsed := func() time.Time {
			var list []*gatehouse.SCIMToken
			e.view(func(tx gatehouse.Tx) (err error) { list, err = tx.ListSCIMTokens(e.ctx, e.tenant.ID); return err })
			if list[0].LastUsedAt == nil {
				t.Fatal("token never touched")
			}
			return *list[0].LastUsedAt
		}
		first := lastUsed()
		e.clock.Add(30 * time.Second)
		e.do("GET", "/scim/v2/Users", nil).want(t, 200)
		if !lastUsed().Equal(first) {
			t.Error("token touched twice within a minute")
		}
		e.clock.Add(31 * time.Second)
		e.do("GET", "/scim/v2/Users", nil).want(t, 200)
		if !lastUsed().After(first) {
			t.Error("token not touched after a minute")
		}

		// Revocation through this replica takes effect on the very next
		// request, although the token was cached a moment ago.
		e.do("GET", "/scim/v2/Users", nil).want(t, 200)
		e.update(func(tx gatehouse.Tx) error { return tx.DeleteSCIMToken(e.ctx, e.tenant.ID, e.tokID) })
		e.do("GET", "/scim/v2/Users", nil).wantError(t, 401, "")
	})
}

func TestUserLifecycle(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		r := e.do("POST", "/scim/v2/Users", map[string]any{
			"schemas":             []string{scim.SchemaUser, scim.SchemaEnterprise},
			"userName":            "Bo.Lee@Acme.com",
			"externalId":          "00u1",
			"name":                map[string]any{"givenName": "Bo", "familyName": "Lee", "formatted": "Bo Lee"},
			"emails":              []any{map[string]any{"value": "bo.home@example.org", "type": "home"}, map[string]any{"value": "Bo.Lee@acme.com", "type": "work", "primary": true}},
			"displayName":         "Bo Lee",
			"title":               "Engineer",
			"active":              true,
			scim.SchemaEnterprise: map[string]any{"employeeNumber": "42", "department": "R&D", "manager": map[string]any{"value": "usr_x"}},
		}).want(t, 201)
		id := r.str("id")
		if loc := r.header.Get("Location"); loc != publicURL+"/scim/v2/Users/"+id || r.str("meta.location") != loc {
			t.Errorf("Location %q meta.location %q", loc, r.str("meta.location"))
		}
		if r.header.Get("ETag") != `W/"1"` || r.str("meta.version") != `W/"1"` {
			t.Errorf("ETag %q version %q", r.header.Get("ETag"), r.str("meta.version"))
		}
		if r.str("meta.resourceType") != "User" || r.str("meta.created") == "" || r.str("meta.lastModified") == "" {
			t.Errorf("meta %v", r.doc["meta"])
		}
		u := e.getUser(id)
		want := gatehouse.User{Email: "Bo.Lee@acme.com", Username: "Bo.Lee@Acme.com", GivenName: "Bo", FamilyName: "Lee",
			DisplayName: "Bo Lee", ExternalID: "00u1", Status: gatehouse.StatusActive, Source: gatehouse.SourceSCIM}
		got := gatehouse.User{Email: u.Email, Username: u.Username, GivenName: u.GivenName, FamilyName: u.FamilyName,
			DisplayName: u.DisplayName, ExternalID: u.ExternalID, Status: u.Status, Source: u.Source}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stored %+v\nwant %+v", got, want)
		}
		if ent, _ := u.Attributes[scim.SchemaEnterprise].(map[string]any); ent["employeeNumber"] != "42" {
			t.Errorf("enterprise extension not kept: %v", u.Attributes)
		}
		if !e.hasAudit("scim.user.created", id) {
			t.Error("no scim.user.created audit event")
		}

		// GET shows what was sent.
		r = e.do("GET", "/scim/v2/Users/"+id, nil).want(t, 200)
		if r.str("title") != "Engineer" || r.str("name.formatted") != "Bo Lee" || dig(r.doc[scim.SchemaEnterprise], "department") != "R&D" {
			t.Errorf("GET lost attributes: %s", r.raw)
		}
		if len(r.doc["emails"].([]any)) != 2 {
			t.Errorf("emails %v", r.doc["emails"])
		}

		// userName is case-insensitive for filters.
		r = e.do("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "bo.lee@acme.com"`), nil).want(t, 200)
		if r.doc["totalResults"].(float64) != 1 || r.str("Resources.0.id") != id {
			t.Errorf("filter: %s", r.raw)
		}

		// PUT replaces: title and enterprise data not sent are cleared.
		r = e.do("PUT", "/scim/v2/Users/"+id, map[string]any{
			"schemas": []string{scim.SchemaUser}, "userName": "bo.lee@acme.com", "externalId": "00u1",
			"name": map[string]any{"givenName": "Bob", "familyName": "Lee"}, "active": true,
			"emails": []any{map[string]any{"value": "bob@acme.com", "primary": true}},
		}).want(t, 200)
		if r.str("meta.version") != `W/"2"` || r.str("title") != "" || r.doc[scim.SchemaEnterprise] != nil {
			t.Errorf("PUT: %s", r.raw)
		}
		if u := e.getUser(id); u.Email != "bob@acme.com" || u.GivenName != "Bob" {
			t.Errorf("PUT stored %+v", u)
		}
		// A PUT that changes nothing keeps the version.
		r = e.do("PUT", "/scim/v2/Users/"+id, map[string]any{
			"schemas": []string{scim.SchemaUser}, "userName": "bo.lee@acme.com", "externalId": "00u1",
			"name": map[string]any{"givenName": "Bob", "familyName": "Lee"}, "active": true,
			"emails": []any{map[string]any{"value": "bob@acme.com", "primary": true}},
		}).want(t, 200)
		if r.str("meta.version") != `W/"2"` {
			t.Errorf("no-op PUT bumped the version: %s", r.str("meta.version"))
		}

		// DELETE leaves a tombstone: 404 to SCIM, still reserved for JIT.
		e.do("DELETE", "/scim/v2/Users/"+id, nil).want(t, 204)
		e.do("GET", "/scim/v2/Users/"+id, nil).wantError(t, 404, "")
		e.do("DELETE", "/scim/v2/Users/"+id, nil).wantError(t, 404, "")
		e.view(func(tx gatehouse.Tx) error {
			u, err := tx.GetUserByEmail(e.ctx, e.tenant.ID, "bob@acme.com")
			if err != nil || u.DeletedAt == nil {
				t.Errorf("tombstone: %+v %v", u, err)
			}
			return nil
		})
		if !e.hasAudit("scim.user.deleted", id) {
			t.Error("no scim.user.deleted audit event")
		}
		// The tombstone keeps the userName reserved: a new POST is a conflict.
		e.do("POST", "/scim/v2/Users", map[string]any{"userName": "bo.lee@acme.com"}).wantError(t, 409, "uniqueness")
	})
}

func TestUserEmailRules(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		// No emails and a userName that is no address: no email at all.
		id := e.createUser("jdoe", nil)
		if u := e.getUser(id); u.Email != "" {
			t.Errorf("email %q, want empty", u.Email)
		}
		r := e.do("GET", "/scim/v2/Users/"+id, nil).want(t, 200)
		if r.doc["emails"] != nil {
			t.Errorf("emails rendered for a user without email: %s", r.raw)
		}
		// A userName that is an address serves as the email.
		id = e.createUser("kim@acme.com", nil)
		if u := e.getUser(id); u.Email != "kim@acme.com" {
			t.Errorf("email %q", u.Email)
		}
		// Without primary, the first email is the user's.
		id = e.createUser("lu", map[string]any{"emails": []any{map[string]any{"value": "lu@acme.com"}, map[string]any{"value": "lu2@acme.com"}}})
		if u := e.getUser(id); u.Email != "lu@acme.com" {
			t.Errorf("email %q", u.Email)
		}
		e.do("POST", "/scim/v2/Users", map[string]any{"userName": "x", "emails": []any{map[string]any{"value": "not an email"}}}).wantError(t, 400, "invalidValue")
		e.do("POST", "/scim/v2/Users", map[string]any{"emails": []any{map[string]any{"value": "a@acme.com"}}}).wantError(t, 400, "invalidValue")
		// The same email on another user is a conflict, named.
		r = e.do("POST", "/scim/v2/Users", map[string]any{"userName": "lu-again", "externalId": "e9", "emails": []any{map[string]any{"value": "LU@acme.com"}}})
		// lu was created by SCIM: not adoptable, so uniqueness.
		r.wantError(t, 409, "uniqueness")
	})
}

func TestUniquenessAndConcurrentCreates(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		e.createUser("dup@acme.com", nil)
		e.do("POST", "/scim/v2/Users", map[string]any{"userName": "DUP@acme.com"}).wantError(t, 409, "uniqueness")

		// 20 simultaneous creates of one userName: one 201, the rest 409.
		const n = 20
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := e.do("POST", "/scim/v2/Users", map[string]any{"userName": "race@acme.com", "externalId": "race"})
				statuses[i] = r.status
				if r.status == 409 && r.str("scimType") != "uniqueness" {
					t.Errorf("409 without uniqueness: %s", r.raw)
				}
			}(i)
		}
		wg.Wait()
		count := map[int]int{}
		for _, s := range statuses {
			count[s]++
		}
		if count[201] != 1 || count[409] != n-1 {
			t.Errorf("statuses %v, want one 201 and %d 409", count, n-1)
		}
		var total int
		e.view(func(tx gatehouse.Tx) (err error) {
			total, err = tx.CountUsers(e.ctx, e.tenant.ID, gatehouse.UserFilter{Username: "race@acme.com"})
			return err
		})
		if total != 1 {
			t.Errorf("%d users named race@acme.com", total)
		}
	})
}

func TestJITReconciliation(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		// JIT created "ana" (username from the email's local part).
		jit := &gatehouse.User{TenantID: e.tenant.ID, Email: "ana@acme.com", Username: "ana", Source: gatehouse.SourceJIT, Status: gatehouse.StatusActive}
		jit2 := &gatehouse.User{TenantID: e.tenant.ID, Email: "cy@acme.com", Username: "cy@acme.com", Source: gatehouse.SourceJIT, Status: gatehouse.StatusActive}
		e.update(func(tx gatehouse.Tx) error {
			if err := tx.CreateUser(e.ctx, jit); err != nil {
				return err
			}
			return tx.CreateUser(e.ctx, jit2)
		})
		// Entra pushes her with userName = UPN and the same email: adopted.
		r := e.do("POST", "/scim/v2/Users", map[string]any{
			"userName": "ana@acme.com", "externalId": "aad-1", "active": true,
			"emails": []any{map[string]any{"value": "ana@acme.com", "type": "work", "primary": true}},
			"name":   map[string]any{"givenName": "Ana"},
		}).want(t, 201)
		if r.str("id") != jit.ID {
			t.Fatalf("adoption returned id %s, want the JIT user's %s", r.str("id"), jit.ID)
		}
		u := e.getUser(jit.ID)
		if u.ExternalID != "aad-1" || u.Source != gatehouse.SourceSCIM || u.Username != "ana@acme.com" || u.GivenName != "Ana" {
			t.Errorf("adopted user %+v", u)
		}
		if !e.hasAudit("scim.user.adopted", jit.ID) {
			t.Error("no scim.user.adopted event")
		}
		// Same userName: adopted too.
		r = e.do("POST", "/scim/v2/Users", map[string]any{"userName": "CY@acme.com", "externalId": "okta-2"}).want(t, 201)
		if r.str("id") != jit2.ID {
			t.Errorf("adoption by userName returned %s", r.str("id"))
		}
		// A userName that is not an email and no emails: adopted, and the
		// email the user signed in with stays.
		jit4 := &gatehouse.User{TenantID: e.tenant.ID, Email: "eve@acme.com", Username: "eve", Source: gatehouse.SourceJIT, Status: gatehouse.StatusActive}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateUser(e.ctx, jit4) })
		r = e.do("POST", "/scim/v2/Users", map[string]any{"userName": "eve", "externalId": "okta-5"}).want(t, 201)
		if r.str("id") != jit4.ID {
			t.Errorf("adoption by a plain userName returned %s", r.str("id"))
		}
		if u := e.getUser(jit4.ID); u.Email != "eve@acme.com" || u.ExternalID != "okta-5" {
			t.Errorf("adopted without emails: %+v", u)
		}
		// Once adopted, a second POST is a conflict, not a second adoption.
		e.do("POST", "/scim/v2/Users", map[string]any{"userName": "ana@acme.com", "externalId": "aad-9"}).wantError(t, 409, "uniqueness")
		// Simultaneous pushes of one JIT user adopt it once: one 201, the
		// rest 409, never a duplicate.
		jit3 := &gatehouse.User{TenantID: e.tenant.ID, Email: "dee@acme.com", Username: "dee", Source: gatehouse.SourceJIT, Status: gatehouse.StatusActive}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateUser(e.ctx, jit3) })
		var wg sync.WaitGroup
		var mu sync.Mutex
		count := map[int]int{}
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := e.do("POST", "/scim/v2/Users", map[string]any{"userName": "dee@acme.com", "externalId": "aad-dee-" + itoa(i)})
				mu.Lock()
				count[r.status]++
				mu.Unlock()
				if r.status == 201 && r.str("id") != jit3.ID {
					t.Errorf("concurrent adoption created %s", r.str("id"))
				}
			}(i)
		}
		wg.Wait()
		if count[201] != 1 || count[409] != 9 {
			t.Errorf("concurrent adoption statuses %v", count)
		}
		var total int
		e.view(func(tx gatehouse.Tx) (err error) {
			total, err = tx.CountUsers(e.ctx, e.tenant.ID, gatehouse.UserFilter{})
			return err
		})
		if total != 4 {
			t.Errorf("%d users, want 4 (no duplicates)", total)
		}
	})
}

func TestDeactivationEndsSessions(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		for _, tc := range []struct {
			name string
			do   func(id string) *resp
		}{
			{"patch active False string", func(id string) *resp {
				return e.do("PATCH", "/scim/v2/Users/"+id, map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
					"Operations": []any{map[string]any{"op": "Replace", "path": "active", "value": "False"}}})
			}},
			{"put active false", func(id string) *resp {
				return e.do("PUT", "/scim/v2/Users/"+id, map[string]any{"userName": "s-put", "active": false})
			}},
			{"delete", func(id string) *resp { return e.do("DELETE", "/scim/v2/Users/"+id, nil) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				uname := "s-" + strings.Fields(tc.name)[0]
				id := e.createUser(uname, nil)
				now := e.clock.Now()
				e.update(func(tx gatehouse.Tx) error {
					return tx.CreateSession(e.ctx, &gatehouse.Session{ID: gatehouse.NewID("ses"), TenantID: e.tenant.ID, UserID: id,
						AuthTime: now, CreatedAt: now, LastSeenAt: now, IdleExpiry: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)})
				})
				r := tc.do(id)
				if r.status >= 300 {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				var n int
				e.update(func(tx gatehouse.Tx) (err error) { n, err = tx.DeleteUserSessions(e.ctx, e.tenant.ID, id); return err })
				if n != 0 {
					t.Errorf("%d sessions survived", n)
				}
				if tc.name != "delete" {
					if u := e.getUser(id); u.Status != gatehouse.StatusDeactivated || u.Active() {
						t.Errorf("status %s", u.Status)
					}
					if !e.hasAudit("scim.user.deactivated", id) {
						t.Error("no scim.user.deactivated event")
					}
				}
			})
		}
	})
}

func TestETags(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		id := e.createUser("etag@acme.com", nil)
		path := "/scim/v2/Users/" + id
		r := e.do("GET", path, nil, "If-None-Match", `W/"1"`)
		if r.status != http.StatusNotModified {
			t.Errorf("If-None-Match current: %d", r.status)
		}
		e.do("GET", path, nil, "If-None-Match", `W/"7"`).want(t, 200)
		patch := map[string]any{"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": "E"}}}
		e.do("PATCH", path, patch, "If-Match", `W/"9"`).wantError(t, 412, "")
		e.do("PUT", path, map[string]any{"userName": "etag@acme.com"}, "If-Match", `W/"9"`).wantError(t, 412, "")
		e.do("DELETE", path, nil, "If-Match", `W/"9"`).wantError(t, 412, "")
		e.do("PATCH", path, patch, "If-None-Match", `*`).wantError(t, 412, "")
		r = e.do("PATCH", path, patch, "If-Match", `W/"1"`).want(t, 200)
		if r.header.Get("ETag") != `W/"2"` {
			t.Errorf("ETag after change %q", r.header.Get("ETag"))
		}
		e.do("DELETE", path, nil, "If-Match", `"2"`).want(t, 204)
	})
}

func TestFilters(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		e.createUser("alice", map[string]any{"externalId": "X-1", "displayName": "Alice Smith", "emails": []any{map[string]any{"value": "alice@example.com", "type": "work"}}, "name": map[string]any{"givenName": "Alice", "familyName": "Smith"}})
		e.createUser("bob", map[string]any{"externalId": "x-2", "displayName": "Bob Jones", "emails": []any{map[string]any{"value": "bob@corp.test"}}, "active": false})
		e.createUser("carol_1%", map[string]any{"displayName": "Carol", "name": map[string]any{"givenName": "Carol", "familyName": "Smith"}})
		e.clock.Add(time.Hour)
		e.createUser("dave", map[string]any{"emails": []any{map[string]any{"value": "dave@example.com"}}})

		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{`userName eq "ALICE"`, []string{"alice"}},
			{`userName ne "alice"`, []string{"bob", "carol_1%", "dave"}},
			{`userName co "a"`, []string{"alice", "carol_1%", "dave"}},
			{`userName co "_"`, []string{"carol_1%"}},
			{`userName co "%"`, []string{"carol_1%"}},
			{`userName sw "B"`, []string{"bob"}},
			{`userName ew "E"`, []string{"alice", "dave"}},
			{`userName gt "bob"`, []string{"carol_1%", "dave"}},
			{`userName le "bob"`, []string{"alice", "bob"}},
			{`externalId eq "x-1"`, nil},
			{`externalId eq "X-1"`, []string{"alice"}},
			{`externalId sw "x"`, []string{"bob"}},
			{`externalId co "-"`, []string{"alice", "bob"}},
			{`externalId ew "-2"`, []string{"bob"}},
			{`externalId pr`, []string{"alice", "bob"}},
			{`not (externalId pr)`, []string{"carol_1%", "dave"}},
			{`externalId eq null`, []string{"carol_1%", "dave"}},
			{`emails pr`, []string{"alice", "bob", "dave"}},
			{`emails co "example.com"`, []string{"alice", "dave"}},
			{`emails.value ew "@CORP.test"`, []string{"bob"}},
			{`emails[type eq "work" and value co "@example.com"]`, []string{"alice", "dave"}},
			{`emails[type eq "home"]`, nil},
			{`emails[primary eq true]`, []string{"alice", "bob", "dave"}},
			{`active eq false`, []string{"bob"}},
			{`active eq "True"`, []string{"alice", "carol_1%", "dave"}},
			{`active ne true`, []string{"bob"}},
			{`name.familyName eq "smith" and name.givenName sw "c"`, []string{"carol_1%"}},
			{`name.familyName eq "Smith" or userName eq "bob"`, []string{"alice", "bob", "carol_1%"}},
			{`(userName eq "alice" or userName eq "bob") and active eq true`, []string{"alice"}},
			{`userName eq "alice" or userName eq "bob" and active eq true`, []string{"alice"}},
			{`not (userName eq "alice" or userName eq "bob")`, []string{"carol_1%", "dave"}},
			{`displayName co "SMITH"`, []string{"alice"}},
			{`meta.created gt "2026-03-01T09:30:00Z"`, []string{"dave"}},
			{`meta.lastModified lt "2026-03-01T09:30:00Z"`, []string{"alice", "bob", "carol_1%"}},
			{`meta.resourceType eq "User"`, []string{"alice", "bob", "carol_1%", "dave"}},
			{`USERNAME EQ "bob"`, []string{"bob"}},
			{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob"`, []string{"bob"}},
			// Injection attempts match nothing and break nothing.
			{`userName eq "x' OR 1=1 --"`, nil},
			{`userName eq "alice\" or \"1\"=\"1"`, nil},
			{`displayName co "'; DROP TABLE users; --"`, nil},
		} {
			t.Run(tc.filter, func(t *testing.T) {
				r := e.do("GET", "/scim/v2/Users?count=100&filter="+url.QueryEscape(tc.filter), nil).want(t, 200)
				got := usernames(r)
				sort.Strings(got)
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
				if int(r.doc["totalResults"].(float64)) != len(tc.want) {
					t.Errorf("totalResults %v", r.doc["totalResults"])
				}
			})
		}
		// The table still exists after the injection attempts.
		if r := e.do("GET", "/scim/v2/Users", nil).want(t, 200); r.doc["totalResults"].(float64) != 4 {
			t.Errorf("users after injection attempts: %s", r.raw)
		}

		for _, tc := range []struct{ filter, scimType string }{
			{`userName eq`, "invalidFilter"},
			{`userName xx "a"`, "invalidFilter"},
			{`(userName eq "a"`, "invalidFilter"},
			{`nickName eq "a"`, "invalidFilter"},
			{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "a"`, "invalidFilter"},
			{`active gt true`, "invalidFilter"},
			{`meta.created gt "yesterday"`, "invalidFilter"},
			{`userName eq 12`, "invalidFilter"},
			{strings.Repeat("(", 10000) + `userName eq "a"` + strings.Repeat(")", 10000), "invalidFilter"},
			{`userName eq "` + strings.Repeat("a", 5000) + `"`, "invalidFilter"},
		} {
			name := tc.filter
			if len(name) > 60 {
				name = name[:60]
			}
			t.Run("bad/"+name, func(t *testing.T) {
				start := time.Now()
				e.do("GET", "/scim/v2/Users?filter="+url.QueryEscape(tc.filter), nil).wantError(t, 400, tc.scimType)
				if d := time.Since(start); d > time.Second {
					t.Errorf("refusing took %v", d)
				}
			})
		}
	})
}

func TestListPagingSortingProjection(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		for _, n := range []string{"u3", "u1", "u5", "u2", "u4"} {
			e.createUser(n, map[string]any{"displayName": "D" + n, "emails": []any{map[string]any{"value": n + "@acme.com"}}})
		}
		r := e.do("GET", "/scim/v2/Users?sortBy=userName&startIndex=2&count=2", nil).want(t, 200)
		if got := usernames(r); !reflect.DeepEqual(got, []string{"u2", "u3"}) {
			t.Errorf("page %v", got)
		}
		if r.doc["totalResults"].(float64) != 5 || r.doc["startIndex"].(float64) != 2 || r.doc["itemsPerPage"].(float64) != 2 {
			t.Errorf("list envelope %s", r.raw)
		}
		r = e.do("GET", "/scim/v2/Users?sortBy=userName&sortOrder=descending&count=1", nil).want(t, 200)
		if got := usernames(r); !reflect.DeepEqual(got, []string{"u5"}) {
			t.Errorf("descending %v", got)
		}
		r = e.do("GET", "/scim/v2/Users?count=0", nil).want(t, 200)
		if r.doc["totalResults"].(float64) != 5 || len(r.doc["Resources"].([]any)) != 0 {
			t.Errorf("count=0: %s", r.raw)
		}
		r = e.do("GET", "/scim/v2/Users?startIndex=0&count=-3", nil).want(t, 200)
		if r.doc["startIndex"].(float64) != 1 || len(r.doc["Resources"].([]any)) != 0 {
			t.Errorf("startIndex=0,count=-3: %s", r.raw)
		}
		e.do("GET", "/scim/v2/Users?sortBy=nickName", nil).wantError(t, 400, "invalidValue")
		e.do("GET", "/scim/v2/Users?count=x", nil).wantError(t, 400, "invalidValue")

		r = e.do("GET", "/scim/v2/Users?sortBy=userName&count=1&attributes=userName,emails.value", nil).want(t, 200)
		res := r.doc["Resources"].([]any)[0].(map[string]any)
		keys := sortedKeys(res)
		if !reflect.DeepEqual(keys, []string{"emails", "id", "schemas", "userName"}) {
			t.Errorf("attributes= gave %v", keys)
		}
		if em := res["emails"].([]any)[0].(map[string]any); len(em) != 1 || em["value"] != "u1@acme.com" {
			t.Errorf("emails.value projection %v", em)
		}
		r = e.do("GET", "/scim/v2/Users?sortBy=userName&count=1&excludedAttributes=emails,meta,id", nil).want(t, 200)
		res = r.doc["Resources"].([]any)[0].(map[string]any)
		if res["emails"] != nil || res["meta"] != nil || res["id"] == nil || res["userName"] == nil {
			t.Errorf("excludedAttributes gave %v", sortedKeys(res))
		}

		// POST /Users/.search and the root /.search.
		r = e.do("POST", "/scim/v2/Users/.search", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
			"filter": `userName sw "u"`, "sortBy": "userName", "startIndex": 4, "count": 10, "attributes": []string{"userName"}}).want(t, 200)
		if got := usernames(r); !reflect.DeepEqual(got, []string{"u4", "u5"}) {
			t.Errorf(".search %v", got)
		}
		e.do("POST", "/scim/v2/Groups", map[string]any{"displayName": "ugroup"}).want(t, 201)
		r = e.do("POST", "/scim/v2/.search", map[string]any{"filter": `userName sw "u" or displayName sw "U"`, "count": 10}).want(t, 200)
		if r.doc["totalResults"].(float64) != 6 {
			t.Errorf("root search: %s", r.raw)
		}
		r = e.do("POST", "/scim/v2/.search", map[string]any{"filter": `userName sw "u" or displayName sw "U"`, "startIndex": 5, "count": 10}).want(t, 200)
		if list := r.doc["Resources"].([]any); len(list) != 2 || dig(list[1], "displayName") != "ugroup" {
			t.Errorf("root search page 2: %s", r.raw)
		}
		e.do("GET", "/scim/v2/Users/.search", nil).wantError(t, 405, "")
	})
}

func sortedKeys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

func TestActiveAndPendingStatus(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		pending := &gatehouse.User{TenantID: e.tenant.ID, Username: "pend", Email: "pend@acme.com", Source: gatehouse.SourceJIT, Status: gatehouse.StatusPending}
		e.update(func(tx gatehouse.Tx) error { return tx.CreateUser(e.ctx, pending) })
		// A PATCH that does not touch active leaves a pending user pending.
		e.do("PATCH", "/scim/v2/Users/"+pending.ID, ops(map[string]any{"op": "replace", "path": "displayName", "value": "P"})).want(t, 200)
		if u := e.getUser(pending.ID); u.Status != gatehouse.StatusPending {
			t.Errorf("pending became %s", u.Status)
		}
		// A PUT without active keeps a deactivated user deactivated.
		id := e.createUser("off@acme.com", map[string]any{"active": false})
		e.do("PUT", "/scim/v2/Users/"+id, map[string]any{"userName": "off@acme.com", "displayName": "Off"}).want(t, 200)
		if u := e.getUser(id); u.Status != gatehouse.StatusDeactivated {
			t.Errorf("PUT without active revived the user: %s", u.Status)
		}
		// The IdP activating a pending user approves it.
		e.do("PATCH", "/scim/v2/Users/"+pending.ID, ops(map[string]any{"op": "replace", "path": "active", "value": true})).want(t, 200)
		if u := e.getUser(pending.ID); u.Status != gatehouse.StatusActive {
			t.Errorf("active true left %s", u.Status)
		}
	})
}

func TestProjectionOfExtension(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		id := e.createUser("proj@acme.com", map[string]any{"title": "CTO",
			scim.SchemaEnterprise: map[string]any{"department": "R&D", "employeeNumber": "9"}})
		r := e.do("GET", "/scim/v2/Users/"+id+"?attributes="+url.QueryEscape(scim.SchemaEnterprise+":department,title"), nil).want(t, 200)
		ent, _ := r.doc[scim.SchemaEnterprise].(map[string]any)
		if len(ent) != 1 || ent["department"] != "R&D" || r.doc["title"] != "CTO" || r.doc["userName"] != nil {
			t.Errorf("attributes with a URN: %s", r.raw)
		}
		r = e.do("GET", "/scim/v2/Users/"+id+"?excludedAttributes="+url.QueryEscape(scim.SchemaEnterprise+",name"), nil).want(t, 200)
		if r.doc[scim.SchemaEnterprise] != nil || r.doc["userName"] != "proj@acme.com" {
			t.Errorf("excluding the extension: %s", r.raw)
		}
		// POST honours attributes too.
		r = e.do("POST", "/scim/v2/Users?attributes=userName", map[string]any{"userName": "proj2@acme.com"}).want(t, 201)
		if r.doc["meta"] != nil || r.doc["userName"] != "proj2@acme.com" || r.doc["id"] == nil {
			t.Errorf("POST with attributes: %s", r.raw)
		}
	})
}
