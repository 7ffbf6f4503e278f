package filter

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`userName eq "bjensen"`, `userName eq "bjensen"`},
		{`name.familyName co "O'Malley"`, `name.familyName co "O'Malley"`},
		{`userName Sw "J"`, `userName sw "J"`},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`, `urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`},
		{`title pr`, `title pr`},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, `meta.lastModified gt "2011-05-13T04:42:34Z"`},
		{`title pr and userType eq "Employee"`, `(title pr and userType eq "Employee")`},
		{`title pr or userType eq "Intern"`, `(title pr or userType eq "Intern")`},
		{`a eq 1 or b eq 2 and c eq 3`, `(a eq 1 or (b eq 2 and c eq 3))`},
		{`(a eq 1 or b eq 2) and c eq 3`, `((a eq 1 or b eq 2) and c eq 3)`},
		{`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`,
			`(userType eq "Employee" and (emails co "example.com" or emails.value co "example.org"))`},
		{`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`,
			`(userType ne "Employee" and not ((emails co "example.com" or emails.value co "example.org")))`},
		{`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
			`(emails[(type eq "work" and value co "@example.com")] or ims[(type eq "xmpp" and value co "@foo.com")])`},
		{`emails[type eq "work"].value eq "a@b.c"`, `emails[(type eq "work" and value eq "a@b.c")]`},
		{`active eq TRUE`, `active eq true`},
		{`x eq null`, `x eq null`},
		{`x eq -1.5e3`, `x eq -1.5e3`},
		{`x eq "a \"quoted\" \u00e9"`, `x eq "a \"quoted\" é"`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`,
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`},
		{`members[value eq "2819c223-7f76-453a-919d-413861904646"]`, `members[value eq "2819c223-7f76-453a-919d-413861904646"]`},
	} {
		e, err := Parse(tc.in, Limits{})
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{
		``, `userName`, `userName eq`, `userName eq bob`, `userName xx "a"`, `(userName eq "a"`, `userName eq "a")`,
		`userName eq "a" and`, `not userName eq "a"`, `emails[type eq "work"`, `emails[types[x eq 1]]`, `a.b[c eq 1]`,
		`1abc eq "x"`, `a eq "unterminated`, `a eq "bad \x escape"`, `a eq 1..2`, `a eq "x" or or b eq "y"`, `a ! "x"`,
		`emails[type eq "work"].x.y eq "a"`,
	} {
		if e, err := Parse(in, Limits{}); err == nil {
			t.Errorf("%q parsed as %s", in, e)
		}
	}
}

func TestLimitsBeforeParsing(t *testing.T) {
	deep := strings.Repeat("(", 10000) + `a eq 1` + strings.Repeat(")", 10000)
	start := time.Now()
	_, err := Parse(deep, Limits{MaxLength: 100000})
	if fe, ok := err.(*Error); !ok || !fe.TooLarge {
		t.Fatalf("deep filter: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refusing a 10,000-deep filter took %v", d)
	}
	if _, err := Parse(strings.Repeat("a", 5000), Limits{}); err == nil || !err.(*Error).TooLarge {
		t.Errorf("long filter: %v", err)
	}
	// Brackets inside strings do not count as nesting.
	if _, err := Parse(`a eq "`+strings.Repeat("(", 100)+`"`, Limits{}); err != nil {
		t.Errorf("parens in a string: %v", err)
	}
	terms := strings.Repeat(`a eq 1 or `, 150) + `a eq 1`
	if _, err := Parse(terms, Limits{}); err == nil || !err.(*Error).TooLarge {
		t.Errorf("too many terms: %v", err)
	}
	if _, err := Parse(strings.Repeat("not (", 16)+"a pr"+strings.Repeat(")", 16), Limits{}); err != nil {
		t.Errorf("16 levels: %v", err)
	}
	if _, err := Parse(strings.Repeat("not (", 17)+"a pr"+strings.Repeat(")", 17), Limits{}); err == nil {
		t.Error("17 levels accepted")
	}
}

func TestParsePatchPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`members`, `members`},
		{`name.familyName`, `name.familyName`},
		{`members[value eq "2819c223"]`, `members[value eq "2819c223"]`},
		{`emails[type eq "work"].value`, `emails[type eq "work"].value`},
		{`addresses[type eq "work" and primary eq true].streetAddress`, `addresses[(type eq "work" and primary eq true)].streetAddress`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`},
		{`emails[value eq "a]b"].value`, `emails[value eq "a]b"].value`},
	} {
		p, err := ParsePatchPath(tc.in, Limits{})
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := p.String(); got != tc.want {
			t.Errorf("%s: got %s want %s", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{``, `a b`, `members[`, `members[value eq]`, `members[value eq "x"]value`, `members[value eq "x"].`,
		`name.givenName[value eq "x"]`, `emails[x[y eq 1]]`, `emails[type eq "w"].value.x`, `$bad`} {
		if p, err := ParsePatchPath(in, Limits{}); err == nil {
			t.Errorf("%q parsed as %s", in, p)
		}
	}
}
