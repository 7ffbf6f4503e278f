package mapping

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse-sso/gatehouse"
)

func ptr(b bool) *bool { return &b }

// samlValues builds attributes the way the SAML connector hands them over:
// every value a []any of strings.
func samlValues(kv ...string) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = append(toAnySlice(out[kv[i]]), kv[i+1])
	}
	return out
}

func toAnySlice(v any) []any {
	if v == nil {
		return nil
	}
	return v.([]any)
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
		mapping  gatehouse.AttributeMapping
		raw      map[string]any
		start    gatehouse.Identity
		want     gatehouse.Identity
	}{
		{
			name:     "oidc standard claims",
			protocol: "oidc",
			raw: decode(t, `{"sub":"abc","email":"  Ana@Acme.com ","email_verified":true,"preferred_username":"ana",
				"name":"Ana Lopez","given_name":"Ana","family_name":"Lopez","groups":["eng","eng"," ops ",""]}`),
			start: gatehouse.Identity{Subject: "abc"},
			want: gatehouse.Identity{Subject: "abc", Email: "Ana@Acme.com", EmailVerified: ptr(true), Username: "ana",
				DisplayName: "Ana Lopez", GivenName: "Ana", FamilyName: "Lopez", Groups: []string{"eng", "ops"}},
		},
		{
			name:     "oidc email_verified as string false",
			protocol: "oidc",
			raw:      decode(t, `{"email":"a@b.co","email_verified":"false"}`),
			want:     gatehouse.Identity{Email: "a@b.co", EmailVerified: ptr(false)},
		},
		{
			name:     "oidc email_verified as string TRUE",
			protocol: "oidc",
			raw:      decode(t, `{"email":"a@b.co","email_verified":"TRUE"}`),
			want:     gatehouse.Identity{Email: "a@b.co", EmailVerified: ptr(true)},
		},
		{
			name:     "oidc email_verified absent stays nil; garbage ignored",
			protocol: "oidc",
			raw:      decode(t, `{"email":"a@b.co","email_verified":"maybe"}`),
			want:     gatehouse.Identity{Email: "a@b.co"},
		},
		{
			name:     "subject not mapped by default",
			protocol: "oidc",
			raw:      decode(t, `{"sub":"other","email":"a@b.co"}`),
			start:    gatehouse.Identity{Subject: "from-connector"},
			want:     gatehouse.Identity{Subject: "from-connector", Email: "a@b.co"},
		},
		{
			name:     "oauth2 github-like numeric id as subject, login as username",
			protocol: "oauth2",
			mapping:  gatehouse.AttributeMapping{Subject: "id"},
			raw:      decode(t, `{"id":12345678,"login":"octo","name":"Octo Cat","email":"octo@example.com"}`),
			want:     gatehouse.Identity{Subject: "12345678", Username: "octo", DisplayName: "Octo Cat", Email: "octo@example.com"},
		},
		{
			name:     "oauth2 nested paths and array index",
			protocol: "oauth2",
			mapping: gatehouse.AttributeMapping{Email: "emails.0.value", GivenName: "profile.name.first",
				FamilyName: "profile.name.last", Groups: "profile.teams"},
			raw: decode(t, `{"emails":[{"value":"x@corp.io","primary":true},{"value":"y@corp.io"}],
				"profile":{"name":{"first":"Xia","last":"Ng"},"teams":["a","b"]}}`),
			want: gatehouse.Identity{Email: "x@corp.io", GivenName: "Xia", FamilyName: "Ng", Groups: []string{"a", "b"}},
		},
		{
			name:     "configured name replaces defaults even when absent",
			protocol: "oidc",
			mapping:  gatehouse.AttributeMapping{Email: "work_email"},
			raw:      decode(t, `{"email":"home@example.com"}`),
			want:     gatehouse.Identity{},
		},
		{
			name:     "path out of range and through a scalar",
			protocol: "oauth2",
			mapping:  gatehouse.AttributeMapping{Email: "emails.5.value", Username: "login.x"},
			raw:      decode(t, `{"emails":[{"value":"x@corp.io"}],"login":"octo"}`),
			want:     gatehouse.Identity{},
		},
		{
			name:     "saml entra id claim URIs",
			protocol: "saml",
			raw: samlValues(
				"http://schemas.microsoft.com/identity/claims/objectidentifier", "oid-1",
				"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "ana@acme.com",
				"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "ana@acme.onmicrosoft.com",
				"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "Ana",
				"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "Lopez",
				"http://schemas.microsoft.com/identity/claims/displayname", "Ana Lopez",
				"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "0b1c-guid",
				"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "77aa-guid",
			),
			want: gatehouse.Identity{Email: "ana@acme.com", Username: "ana@acme.onmicrosoft.com", DisplayName: "Ana Lopez",
				GivenName: "Ana", FamilyName: "Lopez", Groups: []string{"0b1c-guid", "77aa-guid"}},
		},
		{
			name:     "saml entra UPN is the email when no emailaddress claim",
			protocol: "saml",
			raw:      samlValues("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "bo@acme.com"),
			want:     gatehouse.Identity{Email: "bo@acme.com", Username: "bo@acme.com"},
		},
		{
			name:     "saml entra name that is not an email is not the email",
			protocol: "saml",
			raw:      samlValues("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "ACME\\bo"),
			want:     gatehouse.Identity{Username: "ACME\\bo"},
		},
		{
			name:     "saml ldap OIDs",
			protocol: "saml",
			raw: samlValues(
				"urn:oid:0.9.2342.19200300.100.1.3", "cy@uni.edu",
				"urn:oid:0.9.2342.19200300.100.1.1", "cy",
				"urn:oid:2.5.4.42", "Cy",
				"urn:oid:2.5.4.4", "Young",
				"urn:oid:2.16.840.1.113730.3.1.241", "Cy Young",
				"urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "staff",
			),
			want: gatehouse.Identity{Email: "cy@uni.edu", Username: "cy", GivenName: "Cy", FamilyName: "Young",
				DisplayName: "Cy Young", Groups: []string{"staff"}},
		},
		{
			name:     "saml okta names",
			protocol: "saml",
			raw:      samlValues("email", "dee@acme.com", "firstName", "Dee", "lastName", "Diaz", "groups", "Everyone"),
			want:     gatehouse.Identity{Email: "dee@acme.com", GivenName: "Dee", FamilyName: "Diaz", Groups: []string{"Everyone"}},
		},
		{
			name:     "saml onelogin names",
			protocol: "saml",
			raw:      samlValues("User.email", "eve@acme.com", "User.FirstName", "Eve", "User.LastName", "Ek", "memberOf", "admins"),
			want:     gatehouse.Identity{Email: "eve@acme.com", GivenName: "Eve", FamilyName: "Ek", Groups: []string{"admins"}},
		},
		{
			name:     "saml names match case-insensitively, first non-empty value",
			protocol: "saml",
			raw:      map[string]any{"EMAILADDRESS": []any{"", " fay@acme.com "}},
			want:     gatehouse.Identity{Email: "fay@acme.com"},
		},
		{
			name:     "saml has no email_verified",
			protocol: "saml",
			raw:      samlValues("mail", "gus@acme.com", "email_verified", "true"),
			want:     gatehouse.Identity{Email: "gus@acme.com"},
		},
		{
			name:     "saml configured name",
			protocol: "saml",
			mapping:  gatehouse.AttributeMapping{Email: "urn:custom:primaryMail", Groups: "roles"},
			raw:      samlValues("mail", "wrong@acme.com", "urn:custom:primaryMail", "hal@acme.com", "roles", "r1", "roles", "r2"),
			want:     gatehouse.Identity{Email: "hal@acme.com", Groups: []string{"r1", "r2"}},
		},
		{
			name:     "empty value falls through to next default",
			protocol: "saml",
			raw:      samlValues("email", "  ", "mail", "ivy@acme.com"),
			want:     gatehouse.Identity{Email: "ivy@acme.com"},
		},
		{
			name:     "single string groups claim",
			protocol: "oidc",
			raw:      decode(t, `{"groups":"solo"}`),
			want:     gatehouse.Identity{Groups: []string{"solo"}},
		},
		{
			name:     "cel expressions override names",
			protocol: "oidc",
			mapping: gatehouse.AttributeMapping{Email: "email", Expressions: map[string]string{
				"email":          `claims.upn.lowerAscii()`,
				"username":       `claims.upn.split("@")[0]`,
				"display_name":   `claims.given_name + " " + claims.family_name`,
				"groups":         `claims.roles.filter(r, r.startsWith("app-")).map(r, r.substring(4))`,
				"email_verified": `true`,
				"subject":        `"oid:" + claims.oid`,
			}},
			raw: decode(t, `{"email":"ignored@x.com","upn":"Jo@Acme.com","given_name":"Jo","family_name":"Ma",
				"roles":["app-wiki","other","app-crm"],"oid":"123"}`),
			want: gatehouse.Identity{Subject: "oid:123", Email: "jo@acme.com", EmailVerified: ptr(true), Username: "Jo",
				DisplayName: "Jo Ma", GivenName: "Jo", FamilyName: "Ma", Groups: []string{"wiki", "crm"}},
		},
		{
			name:     "cel null and empty mean absent",
			protocol: "oidc",
			mapping: gatehouse.AttributeMapping{Expressions: map[string]string{
				"username":     `has(claims.nick) ? claims.nick : null`,
				"display_name": `""`,
			}},
			raw:   decode(t, `{"name":"Kim"}`),
			start: gatehouse.Identity{Username: "keep"},
			want:  gatehouse.Identity{Username: "keep"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.start
			if err := Apply(tt.protocol, tt.mapping, tt.raw, &id); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if id.Raw == nil {
				t.Error("Raw not set")
			}
			tt.want.Raw = tt.raw
			if diff := cmp.Diff(tt.want, id, cmpopts.IgnoreFields(gatehouse.Identity{}, "Raw")); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	big := make([]any, 2000)
	for i := range big {
		big[i] = "x"
	}
	tests := []struct {
		name      string
		protocol  string
		exprs     map[string]string
		raw       map[string]any
		wantField string
		wantMsg   string
	}{
		{"unknown protocol", "ldap", nil, nil, "", "Unknown connection type"},
		{"runtime error: missing key", "oidc", map[string]string{"email": `claims.nope`}, map[string]any{}, "mapping.expressions.email", "failed"},
		{"wrong runtime type", "oidc", map[string]string{"username": `claims.n`}, map[string]any{"n": 3.0}, "mapping.expressions.username", "expected a string"},
		{"wrong list element type", "oidc", map[string]string{"groups": `claims.g`}, map[string]any{"g": []any{1.0}}, "mapping.expressions.groups", "expected a list"},
		{"compile error", "oidc", map[string]string{"email": `claims.email +`}, nil, "mapping.expressions.email", "does not compile"},
		{"over cost budget", "oidc", map[string]string{"groups": `claims.g.map(a, claims.g.map(b, a + b)).map(l, l[0])`},
			map[string]any{"g": big}, "mapping.expressions.groups", "cost budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := gatehouse.Identity{}
			err := Apply(tt.protocol, gatehouse.AttributeMapping{Expressions: tt.exprs}, tt.raw, &id)
			if gatehouse.ErrorCode(err) != gatehouse.EINVALID {
				t.Fatalf("code = %q (%v), want invalid", gatehouse.ErrorCode(err), err)
			}
			if got := gatehouse.ErrorField(err); got != tt.wantField {
				t.Errorf("field = %q, want %q", got, tt.wantField)
			}
			if !strings.Contains(gatehouse.ErrorMessage(err), tt.wantMsg) {
				t.Errorf("message %q does not contain %q", gatehouse.ErrorMessage(err), tt.wantMsg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		m         gatehouse.AttributeMapping
		wantField string
	}{
		{"empty", gatehouse.AttributeMapping{}, ""},
		{"names and good expressions", gatehouse.AttributeMapping{Email: "mail", Expressions: map[string]string{
			"email": `claims.mail`, "email_verified": `claims.ev == "yes"`, "groups": `["a"]`, "username": `"u"`}}, ""},
		{"unknown field", gatehouse.AttributeMapping{Expressions: map[string]string{"phone": `"1"`}}, "mapping.expressions.phone"},
		{"empty expression", gatehouse.AttributeMapping{Expressions: map[string]string{"email": ` `}}, "mapping.expressions.email"},
		{"syntax error", gatehouse.AttributeMapping{Expressions: map[string]string{"email": `claims.(`}}, "mapping.expressions.email"},
		{"undeclared variable", gatehouse.AttributeMapping{Expressions: map[string]string{"email": `user.email`}}, "mapping.expressions.email"},
		{"static type mismatch", gatehouse.AttributeMapping{Expressions: map[string]string{"email_verified": `"true"`}}, "mapping.expressions.email_verified"},
		{"string for a list is fine", gatehouse.AttributeMapping{Expressions: map[string]string{"groups": `"one"`}}, ""},
		{"int for a string", gatehouse.AttributeMapping{Expressions: map[string]string{"username": `1 + 2`}}, "mapping.expressions.username"},
		{"too long", gatehouse.AttributeMapping{Expressions: map[string]string{"email": `"` + strings.Repeat("a", MaxExpressionLen) + `"`}}, "mapping.expressions.email"},
		{"name with spaces", gatehouse.AttributeMapping{Email: " mail"}, "mapping.email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.m)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if gatehouse.ErrorCode(err) != gatehouse.EINVALID || gatehouse.ErrorField(err) != tt.wantField {
				t.Fatalf("err = %v (field %q), want EINVALID on %q", err, gatehouse.ErrorField(err), tt.wantField)
			}
		})
	}
}

func TestSource(t *testing.T) {
	tests := []struct {
		protocol string
		m        gatehouse.AttributeMapping
		want     string
	}{
		{"oidc", gatehouse.AttributeMapping{}, "email"},
		{"saml", gatehouse.AttributeMapping{}, "email (or mail)"},
		{"saml", gatehouse.AttributeMapping{Email: "urn:x"}, "urn:x"},
		{"oidc", gatehouse.AttributeMapping{Expressions: map[string]string{"email": "claims.e"}}, "the expression for email"},
	}
	for _, tt := range tests {
		if got := Source(tt.protocol, tt.m, FieldEmail); got != tt.want {
			t.Errorf("Source(%s, %+v) = %q, want %q", tt.protocol, tt.m, got, tt.want)
		}
	}
}

func TestCompileCached(t *testing.T) {
	p1, err := compile("email", `claims.x`)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := compile("email", `claims.x`)
	if p1 != p2 {
		t.Error("program compiled twice")
	}
}

func BenchmarkApplySAML(b *testing.B) {
	raw := samlValues("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "ana@acme.com",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "Ana",
		"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "g1")
	for b.Loop() {
		var id gatehouse.Identity
		_ = Apply("saml", gatehouse.AttributeMapping{}, raw, &id)
	}
}

func BenchmarkApplyCEL(b *testing.B) {
	m := gatehouse.AttributeMapping{Expressions: map[string]string{"username": `claims.upn.split("@")[0]`}}
	raw := map[string]any{"upn": "ana@acme.com"}
	for b.Loop() {
		var id gatehouse.Identity
		if err := Apply("oidc", m, raw, &id); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGroupsOverage(t *testing.T) {
	tests := []struct {
		name string
		raw  map[string]any
		want bool
	}{
		{"none", map[string]any{"groups": []any{"a"}}, false},
		{"oidc _claim_names", decode(t, `{"_claim_names":{"groups":"src1"},"_claim_sources":{"src1":{"endpoint":"x"}}}`), true},
		{"oidc _claim_names without groups", decode(t, `{"_claim_names":{"other":"src1"}}`), false},
		{"saml groups.link", samlValues("http://schemas.microsoft.com/claims/groups.link", "https://graph.microsoft.com/..."), true},
	}
	for _, tt := range tests {
		var id gatehouse.Identity
		if err := Apply("oidc", gatehouse.AttributeMapping{}, tt.raw, &id); err != nil {
			t.Fatal(err)
		}
		if id.GroupsIncomplete != tt.want {
			t.Errorf("%s: GroupsIncomplete = %v, want %v", tt.name, id.GroupsIncomplete, tt.want)
		}
	}
}
