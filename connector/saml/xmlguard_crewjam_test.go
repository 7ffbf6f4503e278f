package saml

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The guard pass as it ran before crewjam/saml until the one-pass verifier
// (xmldoc.go) replaced both: verifyCrewjam, the differential tests' oracle,
// still runs it, and xmlguard_oracle_test.go still checks it against the
// three-pass guard it replaced.

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
//     than maxAttrs attributes on one element, duplicate attributes (by
//     their written name and by their namespace-resolved name);
//   - names that Go's encoding/xml tokenizes ambiguously (a colon in a local
//     name, an empty prefix), the root of the round-trip attacks
//     (CVE-2020-29509/29511), and a CDATA section next to other character
//     data (two tokens that re-serialize as one);
//   - a root that is not samlp:Response, or anything but exactly one
//     saml:Assertion or saml:EncryptedAssertion in the whole document, as a
//     direct child of the Response. An extra assertion hidden in
//     samlp:Extensions, in Advice or nested in another element is how
//     signature-wrapping attacks smuggle a second identity.
//
// It is one encoding/xml tokenization (RawToken), resolving namespaces
// itself exactly as encoding/xml's Token does, instead of the three passes
// it used to make (tokenize, re-serialize and tokenize again, then Token
// for the structure): the guard was a sixth of a SAML login's CPU. The
// re-serialization compare is not repeated here because, once the names
// above are refused, what it compared is the same by construction, and
// crewjam/saml's xmlroundtrip pass (which ParseXMLResponse always runs
// before parsing, on every document we accept) re-checks every token
// through a real encoder and decoder. xmlguard_oracle_test.go keeps the
// three-pass guard and checks, on the table and under the fuzzer, that
// both accept the same documents.
//
// Errors keep the three-pass guard's precedence: first a lexical refusal
// anywhere in the document (ErrMalformed, ErrDoctype, ErrRoundTrip for a
// name), then a CDATA round-trip refusal, then a structural one
// (ErrMalformed, ErrAssertionCount).
func checkXML(doc []byte) error {
	if len(doc) > MaxResponseBytes {
		return ErrTooLarge
	}
	if !utf8.Valid(doc) {
		return fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var (
		ns                                = nsScope{m: map[string]string{}}
		open                              []xml.Name // raw names of the open elements
		depth, elements, roots, toks, got int
		structErr                         error // first structural refusal, reported last
		rtErr                             error // first round-trip refusal, reported before structErr
		prevText                          bool  // the previous token was character data
	)
	for ; ; toks++ {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		_, text := tok.(xml.CharData)
		if text && prevText && rtErr == nil {
			// A CDATA section next to other text (or another CDATA
			// section) is two tokens that serialize as one.
			rtErr = fmt.Errorf("%w: CDATA section next to other character data", ErrRoundTrip)
		}
		prevText = text
		switch t := tok.(type) {
		case xml.Directive:
			return ErrDoctype
		case xml.Comment:
			return fmt.Errorf("%w: XML comment", ErrMalformed)
		case xml.ProcInst:
			if t.Target != "xml" || toks > 0 {
				return fmt.Errorf("%w: processing instruction %q", ErrMalformed, t.Target)
			}
			if enc := declaredEncoding(t.Inst); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return fmt.Errorf("%w: encoding %q", ErrMalformed, enc)
			}
		case xml.StartElement:
			depth++
			elements++
			if depth == 1 {
				roots++
			}
			switch {
			case depth > maxDepth:
				return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
			case elements > maxElements:
				return fmt.Errorf("%w: more than %d elements", ErrMalformed, maxElements)
			case roots > 1:
				return fmt.Errorf("%w: more than one root element", ErrMalformed)
			}
			if err := checkNames(t); err != nil {
				return err
			}
			open = append(open, t.Name)
			name := ns.start(t)
			if structErr == nil {
				structErr = ns.checkStart(name, t.Attr, depth, &got)
			}
		case xml.EndElement:
			// RawToken does not match end tags to start tags; Token
			// (which the structure pass used) refuses a mismatch.
			if (len(open) == 0 || open[len(open)-1] != t.Name) && structErr == nil {
				structErr = fmt.Errorf("%w: end tag </%s> does not close the open element", ErrMalformed, qname(t.Name))
			}
			if len(open) > 0 {
				open = open[:len(open)-1]
				ns.end()
			}
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return fmt.Errorf("%w: text outside the root element", ErrMalformed)
			}
		}
	}
	if roots != 1 || depth != 0 {
		return fmt.Errorf("%w: no single root element", ErrMalformed)
	}
	if rtErr != nil {
		return rtErr
	}
	if structErr != nil {
		return structErr
	}
	if got != 1 {
		return fmt.Errorf("%w: found %d", ErrAssertionCount, got)
	}
	return nil
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// checkStart checks one element's place in the document: root
// samlp:Response, (Encrypted)Assertions counted in *assertions and only as
// children of the root, no attribute declared twice under two prefixes of
// one namespace.
func (s *nsScope) checkStart(name xml.Name, attrs []xml.Attr, depth int, assertions *int) error {
	if depth == 1 && (name.Space != nsProtocol || name.Local != "Response") {
		return fmt.Errorf("%w: root is {%s}%s, not samlp:Response", ErrMalformed, name.Space, name.Local)
	}
	for i := range attrs {
		ai := s.resolve(attrs[i].Name, false)
		for j := range i {
			if s.resolve(attrs[j].Name, false) == ai {
				return fmt.Errorf("%w: duplicate attribute {%s}%s", ErrMalformed, ai.Space, ai.Local)
			}
		}
	}
	if name.Space == nsAssertion && (name.Local == "Assertion" || name.Local == "EncryptedAssertion") {
		*assertions++
		if depth != 2 {
			return fmt.Errorf("%w: %s at depth %d", ErrAssertionCount, name.Local, depth)
		}
	}
	return nil
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
	for i, a := range t.Attr {
		if bad(a.Name) {
			return fmt.Errorf("%w: attribute name %q", ErrRoundTrip, qname(a.Name))
		}
		for _, b := range t.Attr[:i] {
			if b.Name == a.Name {
				return fmt.Errorf("%w: duplicate attribute %q", ErrMalformed, qname(a.Name))
			}
		}
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
