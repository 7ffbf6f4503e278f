package saml

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The SAML response check parses the document once, with the small parser
// below, and everything else — the guard rules, finding and checking the
// signatures, canonicalization, reading the identity — works on that one
// tree. There is no second parser whose reading of the bytes could differ
// from the one whose canonical form was digested: the identity is read
// from the very nodes that were canonicalized and verified.
//
// The parser accepts only the XML a SAML IdP sends: UTF-8, an optional XML
// declaration, elements, attributes, character data, character and the
// five predefined entity references, CDATA sections, namespace
// declarations. It refuses, while parsing, what has been used to attack
// SAML service providers (the rules checkXML applied before crewjam/saml,
// the same sentinel errors):
//
//   - a DOCTYPE or any other <! directive (entity expansion, XXE):
//     ErrDoctype;
//   - comments (NameID comment injection: canonicalization drops comments,
//     so `ana@acme.com<!---->.evil.com` keeps a valid signature while a
//     text reader may see `ana@acme.com`) and processing instructions
//     other than a leading XML declaration: ErrMalformed;
//   - nesting deeper than maxDepth, more than maxElements elements or
//     maxAttrs attributes on one element, an attribute given twice (by its
//     written name or by its namespace and local name): ErrMalformed;
//   - names that parsers split differently (an empty prefix or local part,
//     more than one colon; CVE-2020-29509/29511), and a CDATA section next
//     to other character data: ErrRoundTrip;
//   - and, stricter than the guard pass it replaces (errStricter; listed
//     in TestParserStricter): names outside ASCII or whose local part
//     starts with a digit, undeclared prefixes, reserved prefix misuse,
//     more than maxNSInScope namespace declarations in scope, a literal
//     tab/CR/LF in an attribute value (XML 1.0 §3.3.3 normalizes them to
//     spaces and Go's encoding/xml does not, so the canonical form would
//     depend on the parser; IdPs write them as &#xA;), attributes not
//     separated by white space, non-XML white space outside the root, an
//     XML declaration without version or with unknown fields.
//
// Structural rules are checked on the finished tree by the caller (root
// element, exactly one assertion).

// maxNSInScope bounds the namespace declarations in scope at any element
// (a response has a handful): resolving a prefix scans them, at every
// element and attribute, in the parser and in canonicalization, so without
// a bound a 1 MiB document of nested declarations costs quadratic time.
const maxNSInScope = 64

// maxPrefixList bounds an InclusiveNamespaces PrefixList (read before the
// signature is verified; each prefix is looked up at every element).
const maxPrefixList = 16

// errStricter marks a refusal of the one-pass parser that the previous
// guard (checkXML + crewjam/saml) did not make; the differential tests
// allow exactly these where the old path accepted.
var errStricter = errors.New("refused by the one-pass parser only")

func stricter(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrMalformed, errStricter}, args...)...)
}

// xmlNS is the namespace bound to the xml prefix (Namespaces in XML 1.0 §3).
const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
	nsXSI   = "http://www.w3.org/2001/XMLSchema-instance"
)

// xdoc is a parsed document: a flat slice of elements, the root first.
type xdoc struct {
	els []xel
}

// xel is one element. Strings share the document's memory when they need
// no decoding.
type xel struct {
	prefix, local, space string // written prefix, local name, namespace URI
	attrs                []xattr
	ns                   []xnsDecl // namespace declarations written on it
	parent               int32     // -1 for the root
	kids                 []xkid
}

type xattr struct {
	prefix, local, space, value string
}

type xnsDecl struct {
	prefix, uri string // prefix "" is the default namespace
}

// xkid is a child: an element (el >= 0) or character data (el < 0).
type xkid struct {
	el   int32
	text string
}

func (e *xel) is(space, local string) bool { return e.local == local && e.space == space }

// attr returns the value of the unqualified attribute name ("" if absent):
// SAML's own attributes are unqualified, and one in another namespace with
// the same local name is another attribute.
func (e *xel) attr(name string) (string, bool) {
	for i := range e.attrs {
		if a := &e.attrs[i]; a.space == "" && a.local == name {
			return a.value, true
		}
	}
	return "", false
}

func (e *xel) attrNS(space, local string) (string, bool) {
	for i := range e.attrs {
		if a := &e.attrs[i]; a.space == space && a.local == local {
			return a.value, true
		}
	}
	return "", false
}

// text returns the character data directly inside e (not inside its child
// elements), as encoding/xml's ",chardata" reads it.
func (d *xdoc) text(e int32) string {
	kids := d.els[e].kids
	switch {
	case len(kids) == 1 && kids[0].el < 0:
		return kids[0].text
	case len(kids) == 0:
		return ""
	}
	var b strings.Builder
	for _, k := range kids {
		if k.el < 0 {
			b.WriteString(k.text)
		}
	}
	return b.String()
}

// children calls f for each child element of e in document order until f
// returns false.
func (d *xdoc) children(e int32, f func(c int32, el *xel) bool) {
	for _, k := range d.els[e].kids {
		if k.el >= 0 && !f(k.el, &d.els[k.el]) {
			return
		}
	}
}

// lookupNS returns the namespace bound to prefix in scope at e.
func (d *xdoc) lookupNS(e int32, prefix string) (string, bool) {
	if prefix == "xml" {
		return nsXML, true
	}
	for ; e >= 0; e = d.els[e].parent {
		for _, n := range d.els[e].ns {
			if n.prefix == prefix {
				return n.uri, true
			}
		}
	}
	return "", prefix == ""
}

// parser state.
type xparser struct {
	s     string
	i     int
	doc   *xdoc
	open  []int32   // open elements
	scope []xnsDecl // in-scope declarations, innermost last
	mark  []int     // len(scope) when each open element started
	rtErr error     // first round-trip refusal, reported after lexical ones
}

// parseXML parses doc (at most MaxResponseBytes, checked by the caller).
// Lexical refusals come first, in document order, then a round-trip one.
func parseXML(doc []byte) (*xdoc, error) {
	if len(doc) > MaxResponseBytes {
		return nil, ErrTooLarge
	}
	if err := checkChars(doc); err != nil {
		return nil, err
	}
	s := string(doc)
	// Every element starts with '<': one allocation for all of them.
	p := &xparser{s: s, doc: &xdoc{els: make([]xel, 0, min(strings.Count(s, "<"), maxElements))}}
	if err := p.prolog(); err != nil {
		return nil, err
	}
	if p.i >= len(p.s) || p.s[p.i] != '<' {
		return nil, p.outsideText("no root element")
	}
	if err := p.element(); err != nil {
		return nil, err
	}
	// Misc after the root: only white space (comments and PIs are refused
	// anywhere).
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case isSpace(c):
			p.i++
		case c == '<':
			if err := p.misc(); err != nil {
				return nil, err
			}
			if p.i < len(p.s) && p.s[p.i] == '<' {
				return nil, fmt.Errorf("%w: more than one root element", ErrMalformed)
			}
		default:
			return nil, p.outsideText("text outside the root element")
		}
	}
	if p.rtErr != nil {
		return nil, p.rtErr
	}
	return p.doc, nil
}

// checkChars refuses bytes that are not UTF-8 or not XML 1.0 characters
// (§2.2), in one pass.
func checkChars(doc []byte) error {
	// Go's encoding/xml (the guard pass this replaced) did not look at the
	// characters of the XML declaration: a refusal there is errStricter.
	declEnd := -1
	if bytes.HasPrefix(doc, []byte("<?xml")) {
		declEnd = bytes.Index(doc, []byte("?>"))
	}
	refuse := func(i int, format string, args ...any) error {
		if i < declEnd {
			return stricter(format+" in the XML declaration", args...)
		}
		return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	for i := 0; i < len(doc); {
		c := doc[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return refuse(i, "control character %#x", c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(doc[i:])
		if r == utf8.RuneError && n == 1 {
			return refuse(i, "not UTF-8")
		}
		if !(r <= 0xD7FF || 0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= 0x10FFFF) {
			return refuse(i, "character %U", r)
		}
		i += n
	}
	return nil
}

// outsideText refuses character data outside the root element (at p.i).
// Only XML white space (S, §2.3) may be there; the guard pass accepted any
// Unicode white space (errStricter).
func (p *xparser) outsideText(what string) error {
	seg := p.s[p.i:]
	if lt := strings.IndexByte(seg, '<'); lt >= 0 {
		seg = seg[:lt]
	}
	if seg != "" && strings.TrimSpace(seg) == "" {
		return stricter("%s: non-XML white space", what)
	}
	return fmt.Errorf("%w: %s", ErrMalformed, what)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *xparser) skipSpace() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

// prolog reads an optional XML declaration (only at the very start, UTF-8
// only) and white space.
func (p *xparser) prolog() error {
	if strings.HasPrefix(p.s, "<?xml") && len(p.s) > 5 && !isSpace(p.s[5]) && p.s[5] != '?' && !isASCIINameByte(p.s[5]) {
		// encoding/xml ends the target name at any byte that cannot
		// continue a name and reads "<?xml<x ...?>" as the declaration;
		// XML 1.0 §2.8 wants white space or "?>" there.
		return stricter("malformed XML declaration")
	}
	if strings.HasPrefix(p.s, "<?xml") && len(p.s) > 5 && (isSpace(p.s[5]) || p.s[5] == '?') {
		end := strings.Index(p.s, "?>")
		if end < 0 {
			return fmt.Errorf("%w: unterminated XML declaration", ErrMalformed)
		}
		if err := checkXMLDecl(p.s[5:end]); err != nil {
			return err
		}
		p.i = end + 2
	}
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case isSpace(c):
			p.i++
		case c == '<' && p.i+1 < len(p.s) && (p.s[p.i+1] == '!' || p.s[p.i+1] == '?'):
			if err := p.misc(); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

// isASCIINameByte: c may continue an XML name (ASCII letters, digits,
// '_', '-', '.', ':').
func isASCIINameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':'
}

// checkXMLDecl checks the pseudo-attributes of the XML declaration
// (XML 1.0 §2.8): version 1.0, encoding (if given) UTF-8, standalone yes or
// no, nothing else. Go's encoding/xml refused only another version and
// another encoding (ErrMalformed, as checkXML did); the rest of the syntax
// it did not check (errStricter).
func checkXMLDecl(s string) error {
	seen := map[string]bool{}
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return stricter("XML declaration")
		}
		name := strings.TrimRight(s[:eq], " \t\r\n")
		s = strings.TrimLeft(s[eq+1:], " \t\r\n")
		if s == "" || (s[0] != '"' && s[0] != '\'') {
			return stricter("XML declaration")
		}
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return stricter("XML declaration")
		}
		val := s[1 : 1+end]
		s = s[2+end:]
		if seen[name] {
			return stricter("XML declaration repeats %s", name)
		}
		seen[name] = true
		switch {
		case name == "version" && val != "1.0":
			return fmt.Errorf("%w: XML version %q", ErrMalformed, val)
		case name == "encoding" && !strings.EqualFold(val, "utf-8"):
			return fmt.Errorf("%w: encoding %q", ErrMalformed, val)
		case name == "version", name == "encoding":
		case name == "standalone" && (val == "yes" || val == "no"):
		default:
			return stricter("XML declaration %s=%q", name, val)
		}
	}
	if !seen["version"] {
		return stricter("XML declaration without version")
	}
	return nil
}

// misc refuses what may start with "<!" or "<?" outside CDATA: a comment,
// a DOCTYPE or other directive, a processing instruction.
func (p *xparser) misc() error {
	rest := p.s[p.i:]
	switch {
	case strings.HasPrefix(rest, "<!--"):
		return fmt.Errorf("%w: XML comment", ErrMalformed)
	case strings.HasPrefix(rest, "<!"):
		return ErrDoctype
	case strings.HasPrefix(rest, "<?"):
		return fmt.Errorf("%w: processing instruction", ErrMalformed)
	}
	return nil
}

// name reads an XML name restricted to ASCII and splits it at its colon.
// A name that is not local or prefix:local (empty part, two colons) is the
// round-trip hazard of CVE-2020-29509/29511.
func (p *xparser) name() (prefix, local string, err error) {
	start := p.i
	colons, colon := 0, -1
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9', c == '-', c == '.':
			switch {
			case p.i == start:
				return "", "", fmt.Errorf("%w: name at byte %d", ErrMalformed, start)
			case colon >= 0 && p.i == colon+1:
				// encoding/xml checks only the first character of the
				// whole name.
				return "", "", stricter("local name starting with %q at byte %d", c, p.i)
			}
		case c == ':':
			colons++
			colon = p.i
		case c >= utf8.RuneSelf:
			return "", "", stricter("non-ASCII name at byte %d", start)
		default:
			goto done
		}
		p.i++
	}
done:
	n := p.s[start:p.i]
	switch {
	case n == "":
		return "", "", fmt.Errorf("%w: missing name at byte %d", ErrMalformed, start)
	case colons == 0:
		return "", n, nil
	case colons == 1 && colon > start && colon < p.i-1:
		return n[:colon-start], n[colon-start+1:], nil
	}
	return "", "", fmt.Errorf("%w: name %q", ErrRoundTrip, n)
}

type rawAttr struct {
	prefix, local, value string
}

// element parses one element and its content (iteratively, so depth costs
// no stack).
func (p *xparser) element() error {
	var attrs []rawAttr
	for {
		// p.s[p.i] == '<' and what follows is a start tag, an end tag,
		// CDATA, or something refused.
		rest := p.s[p.i:]
		switch {
		case strings.HasPrefix(rest, "</"):
			if len(p.open) == 0 {
				return fmt.Errorf("%w: end tag without start tag", ErrMalformed)
			}
			p.i += 2
			prefix, local, err := p.name()
			if err != nil {
				return err
			}
			p.skipSpace()
			if p.i >= len(p.s) || p.s[p.i] != '>' {
				return fmt.Errorf("%w: end tag", ErrMalformed)
			}
			p.i++
			top := &p.doc.els[p.open[len(p.open)-1]]
			if top.prefix != prefix || top.local != local {
				return fmt.Errorf("%w: end tag </%s> does not close the open element", ErrMalformed, local)
			}
			p.closeElement()
		case strings.HasPrefix(rest, "<![CDATA["):
			if len(p.open) == 0 {
				return fmt.Errorf("%w: CDATA outside the root element", ErrMalformed)
			}
			end := strings.Index(rest[9:], "]]>")
			if end < 0 {
				return fmt.Errorf("%w: unterminated CDATA section", ErrMalformed)
			}
			p.addText(normalizeNewlines(rest[9 : 9+end]))
			p.i += 9 + end + 3
		case strings.HasPrefix(rest, "<!"), strings.HasPrefix(rest, "<?"):
			return p.misc()
		default:
			p.i++
			var err error
			if attrs, err = p.startTag(attrs[:0]); err != nil {
				return err
			}
		}
		if len(p.open) == 0 {
			return nil
		}
		// Character data up to the next '<'.
		start := p.i
		lt := strings.IndexByte(p.s[p.i:], '<')
		if lt < 0 {
			return fmt.Errorf("%w: unexpected end of document", ErrMalformed)
		}
		p.i += lt
		if lt > 0 {
			t, err := decodeText(p.s[start:p.i], false)
			if err != nil {
				return err
			}
			p.addText(t)
		}
	}
}

func (p *xparser) addText(t string) {
	e := &p.doc.els[p.open[len(p.open)-1]]
	if n := len(e.kids); n > 0 && e.kids[n-1].el < 0 {
		// Text next to a CDATA section: two character data tokens in Go's
		// encoding/xml, which a re-serialization merges.
		if p.rtErr == nil {
			p.rtErr = fmt.Errorf("%w: CDATA section next to other character data", ErrRoundTrip)
		}
		e.kids[n-1].text += t
		return
	}
	e.kids = append(e.kids, xkid{el: -1, text: t})
}

func (p *xparser) closeElement() {
	n := len(p.open) - 1
	p.scope = p.scope[:p.mark[n]]
	p.open, p.mark = p.open[:n], p.mark[:n]
}

// startTag parses a start tag after its '<'.
func (p *xparser) startTag(attrs []rawAttr) ([]rawAttr, error) {
	prefix, local, err := p.name()
	if err != nil {
		return attrs, err
	}
	for {
		hadSpace := p.i < len(p.s) && isSpace(p.s[p.i])
		p.skipSpace()
		if p.i >= len(p.s) {
			return attrs, fmt.Errorf("%w: unexpected end of document", ErrMalformed)
		}
		if c := p.s[p.i]; c == '>' || c == '/' {
			break
		}
		if !hadSpace {
			return attrs, stricter("no space before attribute at byte %d", p.i)
		}
		ap, al, err := p.name()
		if err != nil {
			return attrs, err
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != '=' {
			return attrs, fmt.Errorf("%w: attribute without value", ErrMalformed)
		}
		p.i++
		p.skipSpace()
		if p.i >= len(p.s) || (p.s[p.i] != '"' && p.s[p.i] != '\'') {
			return attrs, fmt.Errorf("%w: unquoted attribute value", ErrMalformed)
		}
		q := p.s[p.i]
		end := strings.IndexByte(p.s[p.i+1:], q)
		if end < 0 {
			return attrs, fmt.Errorf("%w: unterminated attribute value", ErrMalformed)
		}
		raw := p.s[p.i+1 : p.i+1+end]
		p.i += end + 2
		v, err := decodeText(raw, true)
		if err != nil {
			return attrs, err
		}
		if len(attrs) == maxAttrs {
			return attrs, fmt.Errorf("%w: more than %d attributes", ErrMalformed, maxAttrs)
		}
		for _, b := range attrs {
			if b.prefix == ap && b.local == al {
				return attrs, fmt.Errorf("%w: duplicate attribute %q", ErrMalformed, al)
			}
		}
		attrs = append(attrs, rawAttr{ap, al, v})
	}
	empty := p.s[p.i] == '/'
	if empty {
		p.i++
		if p.i >= len(p.s) || p.s[p.i] != '>' {
			return attrs, fmt.Errorf("%w: malformed empty element tag", ErrMalformed)
		}
	}
	p.i++
	return attrs, p.open1(prefix, local, attrs, empty)
}

// open1 adds the element, resolving its namespaces.
func (p *xparser) open1(prefix, local string, raw []rawAttr, empty bool) error {
	if len(p.open) >= maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
	}
	if len(p.doc.els) >= maxElements {
		return fmt.Errorf("%w: more than %d elements", ErrMalformed, maxElements)
	}
	parent := int32(-1)
	if len(p.open) > 0 {
		parent = p.open[len(p.open)-1]
	}
	p.mark = append(p.mark, len(p.scope))
	e := xel{prefix: prefix, local: local, parent: parent}
	nattrs := 0
	for _, a := range raw {
		switch {
		case a.prefix == "" && a.local == "xmlns":
			if a.value == nsXML || a.value == nsXMLNS {
				return stricter("reserved namespace as the default")
			}
			e.ns = append(e.ns, xnsDecl{"", a.value})
		case a.prefix == "xmlns":
			switch {
			case a.local == "xmlns", a.local == "xml" && a.value != nsXML, a.local != "xml" && (a.value == nsXML || a.value == nsXMLNS):
				return stricter("reserved namespace prefix %q", a.local)
			case a.value == "":
				return stricter("prefix %q undeclared", a.local)
			case a.local == "xml":
				continue // redundant, allowed, never rendered
			}
			e.ns = append(e.ns, xnsDecl{a.local, a.value})
		default:
			nattrs++
		}
	}
	p.scope = append(p.scope, e.ns...)
	if len(p.scope) > maxNSInScope {
		return stricter("more than %d namespace declarations in scope", maxNSInScope)
	}
	var ok bool
	if e.space, ok = p.resolve(prefix); !ok {
		return stricter("undeclared prefix %q", prefix)
	}
	if nattrs > 0 {
		e.attrs = make([]xattr, 0, nattrs)
		for _, a := range raw {
			if a.prefix == "xmlns" || a.prefix == "" && a.local == "xmlns" {
				continue
			}
			x := xattr{prefix: a.prefix, local: a.local, value: a.value}
			if a.prefix != "" {
				if x.space, ok = p.resolve(a.prefix); !ok {
					return stricter("undeclared prefix %q", a.prefix)
				}
			}
			for _, b := range e.attrs {
				if b.space == x.space && b.local == x.local {
					return fmt.Errorf("%w: duplicate attribute {%s}%s", ErrMalformed, x.space, x.local)
				}
			}
			e.attrs = append(e.attrs, x)
		}
	}
	idx := int32(len(p.doc.els))
	p.doc.els = append(p.doc.els, e)
	if parent >= 0 {
		pe := &p.doc.els[parent]
		pe.kids = append(pe.kids, xkid{el: idx})
	}
	p.open = append(p.open, idx)
	if empty {
		p.closeElement()
	}
	return nil
}

func (p *xparser) resolve(prefix string) (string, bool) {
	if prefix == "xml" {
		return nsXML, true
	}
	for i := len(p.scope) - 1; i >= 0; i-- {
		if p.scope[i].prefix == prefix {
			return p.scope[i].uri, true
		}
	}
	return "", prefix == ""
}

// normalizeNewlines applies XML 1.0 §2.11: CR LF and a lone CR become LF.
func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// decodeText resolves references in character data or an attribute value
// and normalizes line ends. In an attribute value, '<' and literal white
// space other than spaces are refused (see the parser's comment).
func decodeText(raw string, attr bool) (string, error) {
	if attr {
		if strings.ContainsAny(raw, "<") {
			return "", fmt.Errorf("%w: '<' in an attribute value", ErrMalformed)
		}
		if strings.ContainsAny(raw, "\t\n\r") {
			return "", stricter("tab or line break in an attribute value")
		}
	} else if strings.Contains(raw, "]]>") {
		return "", fmt.Errorf("%w: ]]> in character data", ErrMalformed)
	}
	amp := strings.IndexByte(raw, '&')
	if amp < 0 {
		return normalizeNewlines(raw), nil
	}
	raw = normalizeNewlines(raw)
	amp = strings.IndexByte(raw, '&')
	var b strings.Builder
	b.Grow(len(raw))
	for amp >= 0 {
		b.WriteString(raw[:amp])
		raw = raw[amp+1:]
		semi := strings.IndexByte(raw, ';')
		if semi < 0 {
			return "", fmt.Errorf("%w: unterminated reference", ErrMalformed)
		}
		ref := raw[:semi]
		raw = raw[semi+1:]
		switch ref {
		case "lt":
			b.WriteByte('<')
		case "gt":
			b.WriteByte('>')
		case "amp":
			b.WriteByte('&')
		case "apos":
			b.WriteByte('\'')
		case "quot":
			b.WriteByte('"')
		default:
			r, ok := charRef(ref)
			if !ok {
				return "", fmt.Errorf("%w: undeclared entity or bad reference &%s;", ErrMalformed, ref)
			}
			b.WriteRune(r)
		}
		amp = strings.IndexByte(raw, '&')
	}
	b.WriteString(raw)
	return b.String(), nil
}

// charRef decodes the body of &#N; or &#xH; into an XML character.
func charRef(ref string) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	base, digits := 10, ref[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if digits == "" || len(digits) > 8 {
		return 0, false
	}
	var r rune
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var v rune
		switch {
		case '0' <= c && c <= '9':
			v = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			v = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			v = rune(c-'A') + 10
		default:
			return 0, false
		}
		r = r*rune(base) + v
	}
	ok := r == '\t' || r == '\n' || r == '\r' || 0x20 <= r && r <= 0xD7FF || 0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= 0x10FFFF
	return r, ok
}
