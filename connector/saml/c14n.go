package saml

import (
	"fmt"
	"slices"
	"strings"
)

// Canonicalization algorithms (XML Signature §6.5). SAML signatures use
// exclusive canonicalization (saml-core §5.4.3 recommends it; Okta, Entra
// ID, ADFS, Shibboleth, SimpleSAMLphp and Google all send xml-exc-c14n#
// for SignedInfo and as the Reference's last transform). Inclusive C14N
// 1.0 is the XML Signature default (a Reference whose transforms end with
// the enveloped-signature transform is canonicalized with it, §4.3.3.2),
// and C14N 1.1 gives the same octets as 1.0 for the documents we accept
// (it differs only in inheriting xml:id and xml:base, which we refuse on
// the ancestors of a canonicalized element). The #WithComments variants
// are the same here: the parser refuses comments.
const (
	algExcC14N             = "http://www.w3.org/2001/10/xml-exc-c14n#"
	algExcC14NComments     = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
	algC14N10              = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	algC14N10Comments      = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
	algC14N11              = "http://www.w3.org/2006/12/xml-c14n11"
	algC14N11Comments      = "http://www.w3.org/2006/12/xml-c14n11#WithComments"
	algEnvelopedSignature  = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	nsExcC14N              = "http://www.w3.org/2001/10/xml-exc-c14n#"
	inclusiveNamespacesTag = "InclusiveNamespaces"
)

// c14nMethod is a canonicalization: exclusive (with the InclusiveNamespaces
// PrefixList, "" standing for #default) or inclusive.
type c14nMethod struct {
	exclusive bool
	prefixes  []string
}

// c14nFor returns the method for an algorithm URI and the element that
// names it (CanonicalizationMethod or Transform), whose
// ec:InclusiveNamespaces child gives exclusive C14N's prefix list.
func (d *xdoc) c14nFor(alg string, method int32) (c14nMethod, bool) {
	switch alg {
	case algExcC14N, algExcC14NComments:
		m := c14nMethod{exclusive: true}
		if method < 0 {
			return m, true
		}
		d.children(method, func(_ int32, el *xel) bool {
			if el.is(nsExcC14N, inclusiveNamespacesTag) {
				list, _ := el.attr("PrefixList")
				for _, p := range strings.Fields(list) {
					if p == "#default" {
						p = ""
					}
					if !slices.Contains(m.prefixes, p) {
						m.prefixes = append(m.prefixes, p)
					}
				}
			}
			return true
		})
		if len(m.prefixes) > maxPrefixList {
			return m, false
		}
		return m, true
	case algC14N10, algC14N10Comments, algC14N11, algC14N11Comments:
		return c14nMethod{}, true
	}
	return c14nMethod{}, false
}

// canonicalize appends the canonical form of element e (the subtree it
// roots, as a same-document reference selects it) to buf, leaving out the
// child element skip (the enveloped signature) if skip >= 0.
//
// Exclusive XML Canonicalization 1.0 (W3C REC 2002-07-18) §3: an element
// renders the namespace declarations it visibly uses (its own prefix or
// the default namespace, its attributes' prefixes) and those of the
// InclusiveNamespaces PrefixList that are in scope, unless its nearest
// rendered ancestor already rendered the same binding. Canonical XML 1.0
// (W3C REC 2001-03-15) §2.3, §4.5: the apex renders every binding in
// scope, a descendant those that differ from its parent's.
func (d *xdoc) canonicalize(buf []byte, e, skip int32, m c14nMethod) ([]byte, error) {
	if !m.exclusive {
		// Inclusive C14N would copy xml:* attributes from the ancestors
		// onto the apex (§2.4); C14N 1.1 treats xml:id and xml:base
		// differently. Refuse rather than pick one.
		for a := d.els[e].parent; a >= 0; a = d.els[a].parent {
			for _, at := range d.els[a].attrs {
				if at.space == nsXML {
					return nil, fmt.Errorf("%w: xml:%s on an ancestor of an inclusively canonicalized element", ErrUnsupported, at.local)
				}
			}
		}
	}
	c := canonicalizer{d: d, m: m, skip: skip, buf: buf}
	c.element(e, true)
	return c.buf, nil
}

type canonicalizer struct {
	d        *xdoc
	m        c14nMethod
	skip     int32
	buf      []byte
	rendered []xnsDecl // exclusive: bindings rendered by the open output ancestors
	decls    []xnsDecl // scratch
	attrs    []*xattr  // scratch
}

func (c *canonicalizer) element(e int32, apex bool) {
	el := &c.d.els[e]
	mark := len(c.rendered)
	decls := c.decls[:0]
	if c.m.exclusive {
		decls = c.exclusiveDecls(e, el, decls)
	} else {
		decls = c.inclusiveDecls(e, el, apex, decls)
	}
	slices.SortFunc(decls, func(a, b xnsDecl) int { return strings.Compare(a.prefix, b.prefix) })
	c.buf = append(c.buf, '<')
	c.buf = appendQName(c.buf, el.prefix, el.local)
	for _, n := range decls {
		if n.prefix == "" {
			c.buf = append(c.buf, ` xmlns="`...)
		} else {
			c.buf = append(c.buf, ` xmlns:`...)
			c.buf = append(c.buf, n.prefix...)
			c.buf = append(c.buf, `="`...)
		}
		c.buf = appendEscaped(c.buf, n.uri, true)
		c.buf = append(c.buf, '"')
	}
	if c.m.exclusive {
		c.rendered = append(c.rendered, decls...)
	}
	c.decls = decls[:0]
	if len(el.attrs) > 0 {
		attrs := c.attrs[:0]
		for i := range el.attrs {
			attrs = append(attrs, &el.attrs[i])
		}
		slices.SortFunc(attrs, func(a, b *xattr) int {
			if r := strings.Compare(a.space, b.space); r != 0 {
				return r
			}
			return strings.Compare(a.local, b.local)
		})
		for _, a := range attrs {
			c.buf = append(c.buf, ' ')
			c.buf = appendQName(c.buf, a.prefix, a.local)
			c.buf = append(c.buf, `="`...)
			c.buf = appendEscaped(c.buf, a.value, true)
			c.buf = append(c.buf, '"')
		}
		c.attrs = attrs[:0]
	}
	c.buf = append(c.buf, '>')
	for _, k := range el.kids {
		switch {
		case k.el < 0:
			c.buf = appendEscaped(c.buf, k.text, false)
		case k.el != c.skip:
			c.element(k.el, false)
		}
	}
	c.buf = append(c.buf, "</"...)
	c.buf = appendQName(c.buf, el.prefix, el.local)
	c.buf = append(c.buf, '>')
	c.rendered = c.rendered[:mark]
}

// exclusiveDecls lists the declarations e renders under exclusive C14N.
func (c *canonicalizer) exclusiveDecls(e int32, el *xel, decls []xnsDecl) []xnsDecl {
	add := func(prefix string, always bool) {
		if prefix == "xml" {
			return
		}
		for _, n := range decls {
			if n.prefix == prefix {
				return
			}
		}
		uri, inScope := c.d.lookupNS(e, prefix)
		if !inScope && !always {
			return
		}
		prev, had := c.renderedNS(prefix)
		if prefix == "" {
			// The empty default namespace needs rendering (xmlns="") only
			// to undo a non-empty one rendered above.
			if uri == prev {
				return
			}
		} else if had && prev == uri {
			return
		}
		decls = append(decls, xnsDecl{prefix, uri})
	}
	add(el.prefix, true)
	for i := range el.attrs {
		if p := el.attrs[i].prefix; p != "" {
			add(p, true)
		}
	}
	for _, p := range c.m.prefixes {
		add(p, false)
	}
	return decls
}

func (c *canonicalizer) renderedNS(prefix string) (string, bool) {
	for i := len(c.rendered) - 1; i >= 0; i-- {
		if c.rendered[i].prefix == prefix {
			return c.rendered[i].uri, true
		}
	}
	return "", false
}

// inclusiveDecls lists the declarations e renders under inclusive C14N:
// at the apex every binding in scope, below it those e changes.
func (c *canonicalizer) inclusiveDecls(e int32, el *xel, apex bool, decls []xnsDecl) []xnsDecl {
	if !apex {
		for _, n := range el.ns {
			if prev, _ := c.d.lookupNS(el.parent, n.prefix); prev != n.uri {
				decls = append(decls, n)
			}
		}
		return decls
	}
	for a := e; a >= 0; a = c.d.els[a].parent {
	next:
		for _, n := range c.d.els[a].ns {
			for _, have := range decls {
				if have.prefix == n.prefix {
					continue next
				}
			}
			decls = append(decls, n)
		}
	}
	// An empty default namespace in scope at the apex renders nothing.
	return slices.DeleteFunc(decls, func(n xnsDecl) bool { return n.prefix == "" && n.uri == "" })
}

func appendQName(buf []byte, prefix, local string) []byte {
	if prefix != "" {
		buf = append(buf, prefix...)
		buf = append(buf, ':')
	}
	return append(buf, local...)
}

// appendEscaped escapes text (C14N 1.0 §2.3: &, <, > and CR in text; &, <,
// ", TAB, LF and CR in attribute values).
func appendEscaped(buf []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			if attr {
				continue
			}
			esc = "&gt;"
		case '"':
			if !attr {
				continue
			}
			esc = "&quot;"
		case '\t':
			if !attr {
				continue
			}
			esc = "&#x9;"
		case '\n':
			if !attr {
				continue
			}
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		buf = append(buf, s[last:i]...)
		buf = append(buf, esc...)
		last = i + 1
	}
	return append(buf, s[last:]...)
}
