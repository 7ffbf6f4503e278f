package saml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Limits applied to a response before any XML library sees it. A response
// from an IdP is a few kilobytes (tens with many group attributes); the
// limits leave a wide margin and stop resource exhaustion early.
const (
	// MaxResponseBytes is the largest decoded SAMLResponse accepted
	// (issue 6: "over 1 MiB refused before any parsing").
	MaxResponseBytes = 1 << 20
	maxDepth         = 32
	maxElements      = 20000
	maxAttrs         = 64
)

// XML namespaces (saml-core §1.2).
const (
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsDSig      = "http://www.w3.org/2000/09/xmldsig#"
)

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
func checkXML(doc []byte) error {
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

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// checkNames refuses names encoding/xml would tokenize differently from
// other XML parsers, and duplicate attributes (a parser differential too:
// etree and encoding/xml.Unmarshal pick different copies).
func checkNames(t xml.StartElement) error {
	bad := func(n xml.Name) bool {
		return n.Local == "" || strings.Contains(n.Local, ":") || strings.Contains(n.Space, ":")
	}
	if bad(t.Name) {
		return fmt.Errorf("%w: element name %q", ErrRoundTrip, qname(t.Name))
	}
	if len(t.Attr) > maxAttrs {
		return fmt.Errorf("%w: more than %d attributes", ErrMalformed, maxAttrs)
	}
	seen := make(map[xml.Name]bool, len(t.Attr))
	for _, a := range t.Attr {
		if bad(a.Name) {
			return fmt.Errorf("%w: attribute name %q", ErrRoundTrip, qname(a.Name))
		}
		if seen[a.Name] {
			return fmt.Errorf("%w: duplicate attribute %q", ErrMalformed, qname(a.Name))
		}
		seen[a.Name] = true
	}
	return nil
}

// declaredEncoding returns the encoding pseudo-attribute of an XML
// declaration, or "".
func declaredEncoding(inst []byte) string {
	s := string(inst)
	i := strings.Index(s, "encoding")
	if i < 0 {
		return ""
	}
	s = strings.TrimLeft(s[i+len("encoding"):], " \t\r\n=")
	if s == "" {
		return ""
	}
	q := s[0]
	if q != '"' && q != '\'' {
		return s
	}
	if j := strings.IndexByte(s[1:], q); j >= 0 {
		return s[1 : 1+j]
	}
	return s
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

// countAssertions counts the saml:Assertion and saml:EncryptedAssertion
// elements anywhere below (not including) an element given as bytes. Used on
// the element a signature covers, which for a decrypted assertion the
// pre-parse checks never saw.
func countNested(doc []byte) (int, error) {
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
