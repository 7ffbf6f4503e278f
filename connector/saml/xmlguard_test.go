package saml

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckXML covers the lexical checks on minimal documents.
func TestCheckXML(t *testing.T) {
	const open = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
	ok := open + `><saml:Assertion ID="a"></saml:Assertion></samlp:Response>`
	cases := []struct {
		name string
		doc  string
		want error
	}{
		{"ok", ok, nil},
		{"xml declaration", `<?xml version="1.0" encoding="UTF-8"?>` + ok, nil},
		{"latin-1 declaration", `<?xml version="1.0" encoding="ISO-8859-1"?>` + ok, ErrMalformed},
		{"doctype", `<!DOCTYPE x>` + ok, ErrDoctype},
		{"entity", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>` + ok, ErrDoctype},
		{"undeclared entity", strings.Replace(ok, `ID="a"`, `ID="&e;"`, 1), ErrMalformed},
		{"processing instruction", `<?xml-stylesheet href="x"?>` + ok, ErrMalformed},
		{"comment", strings.Replace(ok, "</samlp:Response>", "<!-- x --></samlp:Response>", 1), ErrMalformed},
		{"colon-prefixed attribute", strings.Replace(ok, open, open+` :ID="x"`, 1), ErrRoundTrip},
		{"colon-suffixed attribute", strings.Replace(ok, open, open+` ID:="x"`, 1), ErrRoundTrip},
		{"empty xmlns prefix", strings.Replace(ok, open, open+` xmlns:="urn:x"`, 1), ErrRoundTrip},
		{"duplicate attribute", strings.Replace(ok, `ID="a"`, `ID="a" ID="b"`, 1), ErrMalformed},
		{"same attribute through two prefixes", strings.Replace(ok, `ID="a"`, `ID="a" xmlns:p="urn:q" xmlns:r="urn:q" p:x="1" r:x="2"`, 1), ErrMalformed},
		{"no assertion", open + `></samlp:Response>`, ErrAssertionCount},
		{"two assertions", open + `><saml:Assertion/><saml:EncryptedAssertion/></samlp:Response>`, ErrAssertionCount},
		{"nested assertion", open + `><saml:Assertion><saml:Advice><saml:Assertion/></saml:Advice></saml:Assertion></samlp:Response>`, ErrAssertionCount},
		{"assertion in extensions only", open + `><samlp:Extensions><saml:Assertion/></samlp:Extensions></samlp:Response>`, ErrAssertionCount},
		{"assertion under another namespace prefix", open + ` xmlns:x="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion/><x:Assertion/></samlp:Response>`, ErrAssertionCount},
		{"wrong root", `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"/>`, ErrMalformed},
		{"two roots", ok + ok, ErrMalformed},
		{"text after root", ok + "x", ErrMalformed},
		{"too deep", open + `><saml:Assertion>` + strings.Repeat("<a>", maxDepth) + strings.Repeat("</a>", maxDepth) + `</saml:Assertion></samlp:Response>`, ErrMalformed},
		{"too large", ok + strings.Repeat(" ", MaxResponseBytes), ErrTooLarge},
		{"not UTF-8", strings.Replace(ok, `ID="a"`, "ID=\"\xff\"", 1), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkXML([]byte(tc.doc))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("checkXML = %v, want %v", err, tc.want)
			}
		})
	}
}
