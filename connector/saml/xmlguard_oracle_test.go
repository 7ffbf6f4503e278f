package saml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/beevik/etree"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// threePassCheckXML is the guard as it was before it became one pass
// (commit ee4813a), kept as the oracle the one-pass checkXML must agree
// with. Its comment, as it was:
//
// checkXML refuses, before crewjam/saml, etree or goxmldsig parse it, any
// document that a conforming SAML IdP never sends and that has been used to
// attack SAML service providers:
//
//   - a DOCTYPE or any other directive (entity expansion, XXE);
//   - comments (NameID comment injection: canonicalization drops comments,
//     so `ana@acme.com<!---->.evil.com` keeps a valid signature while a
//     text-node reader sees `ana@acme.com`);
//   - processing instructions other than the XML declaration, and any
//     declared encoding other than UTF-8;
//   - nesting deeper than maxDepth, more than maxElements elements, more
//     than maxAttrs attributes on one element, duplicate attributes;
//   - names that Go's encoding/xml tokenizes ambiguously (a colon in a local
//     name, an empty prefix), the root of the round-trip attacks
//     (CVE-2020-29509/29511): we re-serialize the token stream, tokenize it
//     again and refuse the document if anything changed;
//   - a root that is not samlp:Response, or anything but exactly one
//     saml:Assertion or saml:EncryptedAssertion in the whole document, as a
//     direct child of the Response. An extra assertion hidden in
//     samlp:Extensions, in Advice or nested in another element is how
//     signature-wrapping attacks smuggle a second identity.
func threePassCheckXML(doc []byte) error {
	if len(doc) > MaxResponseBytes {
		return ErrTooLarge
	}
	if !utf8.Valid(doc) {
		return fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	first, serialized, err := rawTokens(doc, true)
	if err != nil {
		return err
	}
	second, _, err := rawTokens(serialized, false)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRoundTrip, err)
	}
	if !reflect.DeepEqual(first, second) {
		return ErrRoundTrip
	}
	return checkStructure(doc)
}

// rawTokens tokenizes doc without namespace processing, applying the
// lexical checks, and returns the tokens and their re-serialization.
func rawTokens(doc []byte, check bool) ([]xml.Token, []byte, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var toks []xml.Token
	var out bytes.Buffer
	depth, elements, roots := 0, 0, 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		tok = xml.CopyToken(tok)
		switch t := tok.(type) {
		case xml.Directive:
			return nil, nil, ErrDoctype
		case xml.Comment:
			return nil, nil, fmt.Errorf("%w: XML comment", ErrMalformed)
		case xml.ProcInst:
			if t.Target != "xml" || len(toks) > 0 {
				return nil, nil, fmt.Errorf("%w: processing instruction %q", ErrMalformed, t.Target)
			}
			if enc := declaredEncoding(t.Inst); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return nil, nil, fmt.Errorf("%w: encoding %q", ErrMalformed, enc)
			}
			fmt.Fprintf(&out, "<?%s %s?>", t.Target, t.Inst)
		case xml.StartElement:
			depth++
			elements++
			if depth == 1 {
				roots++
			}
			if check {
				if depth > maxDepth {
					return nil, nil, fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
				}
				if elements > maxElements {
					return nil, nil, fmt.Errorf("%w: more than %d elements", ErrMalformed, maxElements)
				}
				if roots > 1 {
					return nil, nil, fmt.Errorf("%w: more than one root element", ErrMalformed)
				}
				if err := checkNames(t); err != nil {
					return nil, nil, err
				}
			}
			out.WriteString("<" + qname(t.Name))
			for _, a := range t.Attr {
				out.WriteString(" " + qname(a.Name) + `="`)
				_ = xml.EscapeText(&out, []byte(a.Value))
				out.WriteString(`"`)
			}
			out.WriteString(">")
		case xml.EndElement:
			depth--
			out.WriteString("</" + qname(t.Name) + ">")
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return nil, nil, fmt.Errorf("%w: text outside the root element", ErrMalformed)
			}
			_ = xml.EscapeText(&out, t)
		}
		toks = append(toks, tok)
	}
	if roots != 1 || depth != 0 {
		return nil, nil, fmt.Errorf("%w: no single root element", ErrMalformed)
	}
	return toks, out.Bytes(), nil
}

// checkStructure resolves namespaces and checks the document's shape:
// root samlp:Response, exactly one (Encrypted)Assertion in the whole
// document and it a child of the root, no attribute declared twice under
// two prefixes of one namespace.
func checkStructure(doc []byte) error {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	depth, assertions := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && (t.Name.Space != nsProtocol || t.Name.Local != "Response") {
				return fmt.Errorf("%w: root is {%s}%s, not samlp:Response", ErrMalformed, t.Name.Space, t.Name.Local)
			}
			seen := make(map[xml.Name]bool, len(t.Attr))
			for _, a := range t.Attr {
				if seen[a.Name] {
					return fmt.Errorf("%w: duplicate attribute {%s}%s", ErrMalformed, a.Name.Space, a.Name.Local)
				}
				seen[a.Name] = true
			}
			if t.Name.Space == nsAssertion && (t.Name.Local == "Assertion" || t.Name.Local == "EncryptedAssertion") {
				assertions++
				if depth != 2 {
					return fmt.Errorf("%w: %s at depth %d", ErrAssertionCount, t.Name.Local, depth)
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	if assertions != 1 {
		return fmt.Errorf("%w: found %d", ErrAssertionCount, assertions)
	}
	return nil
}

// guardDocs are documents that exercise the one-pass guard's own code
// (namespace scoping, end-tag matching, error precedence) beyond
// TestCheckXML's table, with the sentinel both guards must return.
func guardDocs() []struct {
	name, doc string
	want      error
} {
	const open = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
	return []struct {
		name, doc string
		want      error
	}{
		{"default namespace assertion", open + `><Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion"/></samlp:Response>`, nil},
		{"default namespace root", `<Response xmlns="urn:oasis:names:tc:SAML:2.0:protocol"><a:Assertion xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion"/></Response>`, nil},
		{"second assertion through a rebound prefix", open + `><saml:Assertion/><x xmlns:saml="urn:other"><saml:Assertion/></x><y xmlns:z="urn:oasis:names:tc:SAML:2.0:assertion"><z:Assertion/></y></samlp:Response>`, ErrAssertionCount},
		{"prefix rebound away then back in scope", open + `><x xmlns:saml="urn:other"><saml:Assertion/></x><saml:Assertion/></samlp:Response>`, nil},
		{"rebinding ends with its element", open + `><x xmlns:saml="urn:other"></x><saml:Assertion/><saml:EncryptedAssertion/></samlp:Response>`, ErrAssertionCount},
		{"default namespace undone at end", open + `><x xmlns="urn:oasis:names:tc:SAML:2.0:assertion"><y/></x><Assertion/></samlp:Response>`, ErrAssertionCount},
		{"unbound prefix", open + `><q:Assertion/></samlp:Response>`, ErrAssertionCount},
		{"prefix bound to empty", open + `><saml:Assertion/><e xmlns:saml=""><saml:Assertion/></e></samlp:Response>`, nil},
		{"xml prefix duplicate", open + `><saml:Assertion xml:lang="en" xmlns:l="http://www.w3.org/XML/1998/namespace" l:lang="fr"/></samlp:Response>`, ErrMalformed},
		{"unprefixed attribute is not in the default namespace", open + `><saml:Assertion xmlns="urn:q" xmlns:q="urn:q" ID="a" q:ID="b"/></samlp:Response>`, nil},
		{"mismatched end tag", open + `><saml:Assertion></saml:Other></samlp:Response>`, ErrMalformed},
		{"end tag with another prefix", open + ` xmlns:s2="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion></s2:Assertion></samlp:Response>`, ErrMalformed},
		{"mismatched end tag, then a DOCTYPE", `<x><y></z><!DOCTYPE q></x>`, ErrDoctype},
		{"stray end tag", `<x></x></y><x></x>`, ErrMalformed},
		{"stray end tag, back to depth 0", `<x></x></y><z>`, ErrMalformed},
		{"unclosed root", open + `><saml:Assertion/>`, ErrMalformed},
		{"lexical error after a structural one", open + `><saml:Assertion/><saml:Assertion/><!-- c --></samlp:Response>`, ErrMalformed},
		{"doctype after a structural one", `<x/><!DOCTYPE x>`, ErrDoctype},
		{"round-trip name after a structural one", `<x><y a:="1"/></x>`, ErrRoundTrip},
		{"declaration after whitespace", " \n" + `<?xml version="1.0"?>` + open + `><saml:Assertion/></samlp:Response>`, ErrMalformed},
		{"whitespace around the root", "\n" + open + "><saml:Assertion/></samlp:Response>\n", nil},
		{"text at the top", "x" + open + "><saml:Assertion/></samlp:Response>", ErrMalformed},
		{"entity references", open + `><saml:Assertion ID="a&amp;&#x41;">&lt;x&gt;</saml:Assertion></samlp:Response>`, nil},
		{"CDATA alone", open + `><saml:Assertion><![CDATA[<x>]]></saml:Assertion></samlp:Response>`, nil},
		{"CDATA next to text", open + `><saml:Assertion><![CDATA[<x>]]>&lt;</saml:Assertion></samlp:Response>`, ErrRoundTrip},
		{"CDATA next to text, then a comment", `<x><![CDATA[a]]>b<!-- c --></x>`, ErrMalformed},
		{"CDATA next to text, wrong root", `<x><![CDATA[a]]>b</x>`, ErrRoundTrip},
		{"two CDATA sections", open + `><saml:Assertion><![CDATA[a]]><![CDATA[b]]></saml:Assertion></samlp:Response>`, ErrRoundTrip},
		{"carriage returns", open + ">\r\n<saml:Assertion ID=\"a\r\nb\">\r</saml:Assertion></samlp:Response>", nil},
	}
}

// TestGuardAgreesWithThreePass: the one-pass guard refuses exactly what
// the three-pass guard refused, with the same sentinel, on TestCheckXML's
// kinds of documents, the namespace cases above, real signed responses and
// the signature-wrapping and injection attacks of the security table.
func TestGuardAgreesWithThreePass(t *testing.T) {
	check := func(t *testing.T, doc []byte, want error, wantSet bool) {
		t.Helper()
		newErr, oldErr := checkXML(doc), threePassCheckXML(doc)
		if (newErr == nil) != (oldErr == nil) {
			t.Fatalf("one pass: %v, three passes: %v", newErr, oldErr)
		}
		for _, k := range []error{ErrTooLarge, ErrDoctype, ErrRoundTrip, ErrAssertionCount, ErrMalformed} {
			if errors.Is(newErr, k) != errors.Is(oldErr, k) {
				t.Fatalf("one pass: %v, three passes: %v", newErr, oldErr)
			}
		}
		if wantSet && (want == nil && newErr != nil || want != nil && !errors.Is(newErr, want)) {
			t.Fatalf("checkXML = %v, want %v", newErr, want)
		}
	}
	for _, tc := range guardDocs() {
		t.Run(tc.name, func(t *testing.T) { check(t, []byte(tc.doc), tc.want, true) })
	}
	f := newFixture(t, nil)
	both := signedBoth(f.opts())
	assertion := f.opts()
	assertion.SignAssertion = true
	docs := map[string][]byte{
		"signed both":       samltest.Bytes(f.idp.Response(both)),
		"signed assertion":  samltest.Bytes(f.idp.Response(assertion)),
		"comment injection": samltest.Bytes(samltest.InjectComment(f.idp.Response(both), 3)),
		"two assertions":    samltest.Bytes(samltest.DuplicateAssertion(f.idp.Response(assertion), "evil")),
		"extensions":        samltest.Bytes(samltest.HideAssertionInExtensions(f.idp.Response(assertion), "evil")),
	}
	response := f.opts()
	response.SignResponse = true
	for n := 1; n <= 8; n++ {
		o := assertion
		if n <= 2 {
			o = response
		}
		docs[fmt.Sprintf("XSW%d", n)] = samltest.Bytes(samltest.XSW(n, f.idp.Response(o), "evil"))
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) { check(t, doc, nil, false) })
	}
}

// FuzzGuardOracle: on any input, the one-pass guard accepts exactly what
// the three-pass guard accepts.
//
//	go test ./connector/saml -run '^$' -fuzz FuzzGuardOracle -fuzztime 30s
func FuzzGuardOracle(f *testing.F) {
	for _, tc := range guardDocs() {
		f.Add([]byte(tc.doc))
	}
	f.Add([]byte(`<!DOCTYPE r [<!ENTITY x "y">]><r/>`))
	f.Add([]byte(`<a :b="1" xmlns:="x"><!-- c --></a>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		newErr, oldErr := checkXML(doc), threePassCheckXML(doc)
		if (newErr == nil) != (oldErr == nil) {
			t.Fatalf("one pass: %v, three passes: %v", newErr, oldErr)
		}
	})
}

// serializedCountNested is countNested as it was (commit ee4813a): it
// serialized the element and tokenized it again. It counts the saml:Assertion and saml:EncryptedAssertion
// elements anywhere below (not including) an element given as bytes. Used on
// the element a signature covers, which for a decrypted assertion the
// pre-parse checks never saw.
func serializedCountNested(doc []byte) (int, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	n, depth := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return 0, errors.New("nested too deep")
			}
			if depth > 1 && t.Name.Space == nsAssertion && (t.Name.Local == "Assertion" || t.Name.Local == "EncryptedAssertion") {
				n++
			}
		case xml.EndElement:
			depth--
		}
	}
}

// TestCountNestedAgrees: walking the etree element counts the same nested
// assertions as serializing it and tokenizing it again did, for every
// element of real responses, the signature-wrapping shapes and namespace
// tricks (rebound and default namespaces, unbound prefixes, declarations
// on the element's parents, which serializing the element alone drops).
func TestCountNestedAgrees(t *testing.T) {
	f := newFixture(t, nil)
	assertion := f.opts()
	assertion.SignAssertion = true
	response := signedBoth(f.opts())
	docs := []string{
		string(samltest.Bytes(f.idp.Response(response))),
		string(samltest.Bytes(samltest.DuplicateAssertion(f.idp.Response(assertion), "evil"))),
		string(samltest.Bytes(samltest.HideAssertionInExtensions(f.idp.Response(assertion), "evil"))),
		`<r xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion"><a:Assertion><a:Advice><a:Assertion/><b:Assertion xmlns:b="urn:oasis:names:tc:SAML:2.0:assertion"/></a:Advice></a:Assertion><x xmlns:a="urn:x"><a:Assertion/></x></r>`,
		`<r xmlns="urn:oasis:names:tc:SAML:2.0:assertion"><Assertion><EncryptedAssertion xmlns="urn:x"/><y><EncryptedAssertion/></y></Assertion><q:Assertion/></r>`,
		`<r xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion"><s><a:Assertion xmlns:a=""/><a:Assertion/></s><xml:Assertion/></r>`,
		"<r>" + strings.Repeat("<a>", maxDepth+2) + strings.Repeat("</a>", maxDepth+2) + "</r>",
	}
	for n := 1; n <= 8; n++ {
		o := assertion
		if n <= 2 {
			o = response
		}
		docs = append(docs, string(samltest.Bytes(samltest.XSW(n, f.idp.Response(o), "evil"))))
	}
	for i, doc := range docs {
		d := etree.NewDocument()
		if err := d.ReadFromString(doc); err != nil {
			t.Fatal(err)
		}
		var walk func(e *etree.Element)
		walk = func(e *etree.Element) {
			one := etree.NewDocument()
			one.SetRoot(e.Copy())
			b, err := one.WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := serializedCountNested(b)
			got, gotErr := countNested(e)
			if got != want || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("doc %d, <%s>: countNested = %d, %v; serialized: %d, %v", i, e.FullTag(), got, gotErr, want, wantErr)
			}
			for _, c := range e.ChildElements() {
				walk(c)
			}
		}
		walk(d.Root())
	}
}
