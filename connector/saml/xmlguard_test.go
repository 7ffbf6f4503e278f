package saml

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// guardCase is a document and the refusal the guard rules give it.
type guardCase struct {
	name string
	doc  string
	want error
}

// guardCases cover the lexical and structural rules on minimal documents.
func guardCases() []guardCase {
	const open = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
	ok := open + `><saml:Assertion ID="a"></saml:Assertion></samlp:Response>`
	return []guardCase{
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
}

// TestCheckXML: the old guard pass (the crewjam path's, kept as oracle).
func TestCheckXML(t *testing.T) {
	for _, tc := range guardCases() {
		t.Run(tc.name, func(t *testing.T) {
			err := checkXML([]byte(tc.doc))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("checkXML = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestParseResponseGuard: the one-pass parser applies the same rules, with
// the same sentinel errors, as the guard pass it replaced.
func TestParseResponseGuard(t *testing.T) {
	for _, tc := range guardCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseResponse([]byte(tc.doc))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("parseResponse = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestParserCostBounds: the documents that would make prefix resolution
// quadratic are refused, and what IdPs send is not.
func TestParserCostBounds(t *testing.T) {
	const root = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`
	nest := func(depth, perLevel int) string {
		var b strings.Builder
		b.WriteString(root)
		for i := range depth {
			b.WriteString("<e")
			for j := range perLevel {
				b.WriteString(fmt.Sprintf(` xmlns:p%d_%d="urn:%d"`, i, j, j))
			}
			b.WriteString(">")
		}
		b.WriteString(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"/>`)
		b.WriteString(strings.Repeat("</e>", depth) + "</samlp:Response>")
		return b.String()
	}
	// 30 levels of 60 declarations: refused while parsing.
	if _, _, err := parseResponse([]byte(nest(30, 60))); !errors.Is(err, errStricter) {
		t.Fatalf("namespace bomb: %v", err)
	}
	// A few declarations per level parse (the assertion is misplaced,
	// which is the structural refusal, not the namespace one).
	if _, _, err := parseResponse([]byte(nest(10, 5))); !errors.Is(err, ErrAssertionCount) {
		t.Fatalf("ordinary nesting: %v", err)
	}
	// An InclusiveNamespaces PrefixList is bounded too.
	d, err := parseXML([]byte(`<t xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces PrefixList="` + strings.Repeat("a ", 5) + strings.Repeat("b", 3) + `"/></t>`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.c14nFor(algExcC14N, 0); !ok {
		t.Fatal("short PrefixList refused")
	}
	var list strings.Builder
	for i := range maxPrefixList + 1 {
		fmt.Fprintf(&list, "p%d ", i)
	}
	d, _ = parseXML([]byte(`<t xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces PrefixList="` + list.String() + `"/></t>`))
	if _, ok := d.c14nFor(algExcC14N, 0); ok {
		t.Fatal("long PrefixList accepted")
	}
}

// TestParserStricter lists the documents the guard pass (checkXML)
// accepted and the one-pass parser refuses (errStricter), each a construct
// XML 1.0 or Namespaces in XML forbids, or that parsers read differently.
func TestParserStricter(t *testing.T) {
	const open = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
	ok := open + `><saml:Assertion ID="a"></saml:Assertion></samlp:Response>`
	in := func(old, new string) string { return strings.Replace(ok, old, new, 1) }
	for name, doc := range map[string]string{
		"non-ASCII name":                           in(`<saml:Assertion ID="a">`, `<saml:Assertion ID="a"><é/>`),
		"undeclared prefix":                        in(`<saml:Assertion ID="a">`, `<saml:Assertion ID="a"><q:x/>`),
		"undeclared attribute prefix":              in(`ID="a"`, `ID="a" q:x="1"`),
		"prefix bound to the XML namespace":        in(`ID="a"`, `ID="a" xmlns:q="http://www.w3.org/XML/1998/namespace"`),
		"xmlns:p=\"\"":                             in(`ID="a"`, `ID="a" xmlns:q=""`),
		"tab in an attribute value":                in(`ID="a"`, "ID=\"a\tb\""),
		"line break in an attribute value":         in(`ID="a"`, "ID=\"a\nb\""),
		"no space between attributes":              in(`ID="a"`, `ID="a"Version="2.0"`),
		"local name starting with a digit":         in(`<saml:Assertion ID="a">`, `<saml:Assertion ID="a"><saml:1x/>`),
		"XML declaration without version":          `<?xml encoding="UTF-8"?>` + ok,
		"XML declaration, unknown field":           `<?xml version="1.0" foo="bar"?>` + ok,
		"control character in the XML declaration": "<?xml version=\"1.0\"\x10encoding=\"UTF-8\"?>" + ok,
		"non-breaking space after the root":        ok + "\u00a0",
		"non-breaking space before it":             "\u00a0" + ok,
	} {
		t.Run(name, func(t *testing.T) {
			if err := checkXML([]byte(doc)); err != nil {
				t.Fatalf("checkXML refuses it too (%v): not a stricter rule", err)
			}
			if _, _, err := parseResponse([]byte(doc)); !errors.Is(err, errStricter) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("parseResponse = %v", err)
			}
		})
	}
}
