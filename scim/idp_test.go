package scim_test

// Request shapes as Okta and Microsoft Entra ID send them (Okta's SCIM 2.0
// reference and Entra's "Develop a SCIM endpoint" request examples).

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/scim"
)

const patchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

func ops(list ...map[string]any) map[string]any {
	l := make([]any, len(list))
	for i, o := range list {
		l[i] = o
	}
	return map[string]any{"schemas": []string{patchOp}, "Operations": l}
}

func TestOktaShapes(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		// Connection test: GET /Users?startIndex=1&count=2.
		r := e.do("GET", "/scim/v2/Users?startIndex=1&count=2", nil).want(t, 200)
		if r.doc["totalResults"] == nil || r.doc["Resources"] == nil || r.doc["itemsPerPage"] == nil || r.doc["startIndex"] == nil {
			t.Errorf("list envelope: %s", r.raw)
		}
		// Existence check before create.
		q := "/scim/v2/Users?filter=" + url.QueryEscape(`userName eq "dana@acme.com"`) + "&startIndex=1&count=100"
		if r = e.do("GET", q, nil).want(t, 200); r.doc["totalResults"].(float64) != 0 {
			t.Fatalf("%s", r.raw)
		}
		// Create, as Okta sends it (password included: ignored, never stored).
		r = e.do("POST", "/scim/v2/Users", map[string]any{
			"schemas":     []string{scim.SchemaUser},
			"userName":    "dana@acme.com",
			"name":        map[string]any{"givenName": "Dana", "familyName": "Ray"},
			"emails":      []any{map[string]any{"primary": true, "value": "dana@acme.com", "type": "work"}},
			"displayName": "Dana Ray", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
			"groups": []any{}, "password": "1mz050nq", "active": true,
		}).want(t, 201)
		id := r.str("id")
		if r.doc["password"] != nil {
			t.Error("password returned")
		}
		if u := e.getUser(id); u.Attributes[scim.SchemaUser].(map[string]any)["password"] != nil {
			t.Error("password stored")
		}
		r = e.do("GET", q, nil).want(t, 200)
		if r.doc["totalResults"].(float64) != 1 || r.str("Resources.0.id") != id || r.str("Resources.0.meta.location") == "" {
			t.Errorf("filter after create: %s", r.raw)
		}
		// Okta's full-user PUT, here deactivating.
		r = e.do("PUT", "/scim/v2/Users/"+id, map[string]any{
			"schemas": []string{scim.SchemaUser}, "id": id, "userName": "dana@acme.com",
			"name":        map[string]any{"givenName": "Dana", "familyName": "Ray-Smith"},
			"emails":      []any{map[string]any{"primary": true, "value": "dana@acme.com", "type": "work"}},
			"displayName": "Dana Ray-Smith", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
			"groups": []any{}, "active": false,
			"meta": map[string]any{"resourceType": "User"},
		}).want(t, 200)
		if r.doc["active"] != false || r.str("name.familyName") != "Ray-Smith" {
			t.Errorf("PUT: %s", r.raw)
		}
		// Okta's PATCH reactivation.
		r = e.do("PATCH", "/scim/v2/Users/"+id, ops(map[string]any{"op": "replace", "value": map[string]any{"active": true}})).want(t, 200)
		if u := e.getUser(id); u.Status != gatehouse.StatusActive || !e.hasAudit("scim.user.reactivated", id) {
			t.Errorf("reactivation: %s", u.Status)
		}

		// Groups: push, rename with id echoed back, add and remove members.
		u2 := e.createUser("eli@acme.com", nil)
		r = e.do("POST", "/scim/v2/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "Engineering", "members": []any{}}).want(t, 201)
		gid := r.str("id")
		e.do("PATCH", "/scim/v2/Groups/"+gid, ops(map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "Eng"}})).want(t, 200)
		e.do("PATCH", "/scim/v2/Groups/"+gid, ops(map[string]any{"op": "add", "path": "members",
			"value": []any{map[string]any{"value": id, "display": "dana@acme.com"}, map[string]any{"value": u2, "display": "eli@acme.com"}}})).want(t, 200)
		r = e.do("PATCH", "/scim/v2/Groups/"+gid, ops(map[string]any{"op": "remove", "path": `members[value eq "` + id + `"]`})).want(t, 200)
		if got := memberIDs(r); !reflect.DeepEqual(got, []string{u2}) {
			t.Errorf("members after remove %v", got)
		}
		if r.str("displayName") != "Eng" {
			t.Errorf("rename lost: %s", r.raw)
		}
		// Okta's group PUT with the full member list.
		r = e.do("PUT", "/scim/v2/Groups/"+gid, map[string]any{"schemas": []string{scim.SchemaGroup}, "id": gid, "displayName": "Eng",
			"members": []any{map[string]any{"value": id, "display": "dana@acme.com"}}}).want(t, 200)
		if got := memberIDs(r); !reflect.DeepEqual(got, []string{id}) {
			t.Errorf("members after PUT %v", got)
		}
		e.do("GET", "/scim/v2/Groups?filter="+url.QueryEscape(`displayName eq "eng"`)+"&startIndex=1&count=100", nil).want(t, 200)
		e.do("DELETE", "/scim/v2/Groups/"+gid, nil).want(t, 204)
		e.do("GET", "/scim/v2/Groups/"+gid, nil).wantError(t, 404, "")
	})
}

func TestEntraShapes(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		// Entra's existence checks.
		e.do("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"`), nil).want(t, 200)
		e.do("GET", "/scim/v2/Users?filter="+url.QueryEscape(`emails[type eq "work"].value eq "nobody@acme.com"`), nil).want(t, 200)
		// Entra's create.
		r := e.do("POST", "/scim/v2/Users", map[string]any{
			"schemas":    []string{scim.SchemaUser, scim.SchemaEnterprise},
			"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
			"userName":   "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
			"active":     true,
			"emails":     []any{map[string]any{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}},
			"meta":       map[string]any{"resourceType": "User"},
			"name":       map[string]any{"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
			"roles":      []any{},
		}).want(t, 201)
		id := r.str("id")
		for _, f := range []string{`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`, `emails[type eq "work"].value eq "TEST_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"`} {
			r := e.do("GET", "/scim/v2/Users?filter="+url.QueryEscape(f), nil).want(t, 200)
			if r.doc["totalResults"].(float64) != 1 || r.str("Resources.0.id") != id {
				t.Errorf("%s: %s", f, r.raw)
			}
		}

		// Entra's PATCH: capitalized ops, filtered email path, name
		// sub-attribute, manager as a bare string, active as "False".
		r = e.do("PATCH", "/scim/v2/Users/"+id, ops(
			map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "updatedEmail@microsoft.com"},
			map[string]any{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
			map[string]any{"op": "Add", "path": "name.givenName", "value": "Ada"},
			map[string]any{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "usr_manager1"},
			map[string]any{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
			map[string]any{"op": "Add", "path": `phoneNumbers[type eq "mobile"].value`, "value": "+1 555 0100"},
		)).want(t, 200)
		u := e.getUser(id)
		if u.Email != "updatedEmail@microsoft.com" || u.FamilyName != "updatedFamilyName" || u.GivenName != "Ada" {
			t.Errorf("PATCH stored %+v", u)
		}
		ent := u.Attributes[scim.SchemaEnterprise].(map[string]any)
		if dig(ent, "manager.value") != "usr_manager1" || ent["department"] != "R&D" {
			t.Errorf("enterprise %v", ent)
		}
		if dig(r.doc, "phoneNumbers.0.type") != "mobile" || dig(r.doc, "phoneNumbers.0.value") != "+1 555 0100" {
			t.Errorf("phone: %s", r.raw)
		}
		// Entra removes the manager; then sends a no-path replace with a
		// value object (old-style requests).
		e.do("PATCH", "/scim/v2/Users/"+id, ops(map[string]any{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"})).want(t, 200)
		r = e.do("PATCH", "/scim/v2/Users/"+id, ops(map[string]any{"op": "Replace", "value": map[string]any{
			"displayName": "Ada L", "name.givenName": "Ada", "emails[type eq \"work\"].value": "ada@acme.com",
			scim.SchemaEnterprise: map[string]any{"employeeNumber": "7"},
		}})).want(t, 200)
		u = e.getUser(id)
		ent = u.Attributes[scim.SchemaEnterprise].(map[string]any)
		if u.DisplayName != "Ada L" || u.Email != "ada@acme.com" || ent["manager"] != nil || ent["employeeNumber"] != "7" {
			t.Errorf("no-path replace stored %+v %v", u, ent)
		}
		// Deactivation with a string boolean.
		e.do("PATCH", "/scim/v2/Users/"+id, ops(map[string]any{"op": "Replace", "path": "active", "value": "False"})).want(t, 200)
		if u := e.getUser(id); u.Status != gatehouse.StatusDeactivated {
			t.Errorf("status %s", u.Status)
		}

		// Groups: Entra creates with members [], then adds and removes
		// members with PATCH, removing by value list.
		u2 := e.createUser("zoe@acme.com", nil)
		r = e.do("POST", "/scim/v2/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
			"displayName": "displayName", "members": []any{}, "meta": map[string]any{"resourceType": "Group"}}).want(t, 201)
		gid := r.str("id")
		e.do("GET", "/scim/v2/Groups?excludedAttributes=members&filter="+url.QueryEscape(`displayName eq "displayName"`), nil).want(t, 200)
		e.do("PATCH", "/scim/v2/Groups/"+gid, ops(map[string]any{"op": "Add", "path": "members",
			"value": []any{map[string]any{"value": id}, map[string]any{"value": u2}}})).want(t, 200)
		// Entra's membership check.
		r = e.do("GET", "/scim/v2/Groups?excludedAttributes=members&filter="+url.QueryEscape(`id eq "`+gid+`" and members[value eq "`+u2+`"]`), nil).want(t, 200)
		if r.doc["totalResults"].(float64) != 1 || dig(r.doc, "Resources.0.members") != nil {
			t.Errorf("membership check: %s", r.raw)
		}
		r = e.do("PATCH", "/scim/v2/Groups/"+gid, ops(map[string]any{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": u2}}})).want(t, 200)
		if got := memberIDs(r); !reflect.DeepEqual(got, []string{id}) {
			t.Errorf("members after Remove %v", got)
		}
		r = e.do("GET", "/scim/v2/Groups?excludedAttributes=members&filter="+url.QueryEscape(`id eq "`+gid+`" and members[value eq "`+u2+`"]`), nil).want(t, 200)
		if r.doc["totalResults"].(float64) != 0 {
			t.Errorf("removed member still found: %s", r.raw)
		}
		e.do("PATCH", "/scim/v2/Groups/"+gid, ops(map[string]any{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"})).want(t, 200)
		// Entra's user GET by id, and its removal via DELETE.
		e.do("GET", "/scim/v2/Users/"+id, nil).want(t, 200)
		e.do("DELETE", "/scim/v2/Users/"+id, nil).want(t, 204)
	})
}

func memberIDs(r *resp) []string {
	var out []string
	list, _ := r.doc["members"].([]any)
	for _, m := range list {
		out = append(out, dig(m, "value").(string))
	}
	return out
}
