package saml

// An adversarial review of the one-pass SAML verifier (xmldoc.go, c14n.go,
// dsig.go, response.go): each test forges or modifies a response from the
// test IdP (real RSA/ECDSA keys, real signatures) the way a pentester
// would, and asserts Finish refuses it; a valid control next to each group
// shows the same construction is accepted when nothing is wrong, so a
// refusal is caused by the rule under test and not by a broken signer.
//
// The signatures are built by rvSign with goxmldsig's canonicalizers (not
// ours): an accepted control proves our canonical form agrees with an
// independent implementation on that shape, and a forged one cannot pass
// because the test's signer shares a bug with the verifier.
//
// Known vulnerabilities turned into tests are named by CVE or advisory
// where one applies (crewjam/saml, goxmldsig, ruby-saml, samlify,
// xml-crypto, Go's encoding/xml).

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

const (
	rvEvil      = "evil@attacker.com"
	rvSubject   = "00u1ana"
	rvExc       = "http://www.w3.org/2001/10/xml-exc-c14n#"
	rvEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	rvSHA256    = "http://www.w3.org/2001/04/xmlenc#sha256"
	rvRSA256    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	rvECDSA256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	rvHMAC256   = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
)

// rvSig describes an enveloped signature made by rvSign. Zero fields are
// what a well-behaved IdP sends: ds prefix, URI #ID, enveloped-signature
// then exclusive C14N, SHA-256, RSA-SHA256 by the test IdP's key.
type rvSig struct {
	prefix     string      // Signature prefix; "ds" by default, "-" for the default namespace
	uri        *string     // Reference URI; default "#" + the element's ID
	transforms []string    // default enveloped-signature, exc-c14n
	prefixList *string     // an ec:InclusiveNamespaces PrefixList on the last transform
	c14n       string      // SignedInfo's CanonicalizationMethod; default exc-c14n
	siPrefixes *string     // an InclusiveNamespaces PrefixList on the CanonicalizationMethod
	digestURI  string      // default SHA-256
	digestHash crypto.Hash // the hash actually computed (default: the one digestURI names)
	digestOf   []byte      // digest these octets instead of the element's canonical form
	methodURI  string      // default RSA-SHA256, ECDSA-SHA256 or HMAC-SHA256 by key type
	signHash   crypto.Hash // the hash actually signed (default SHA-256)
	key        any         // *rsa.PrivateKey (default the IdP's), *ecdsa.PrivateKey, []byte (HMAC)
	// ecValue encodes an ECDSA signature (default r||s, XML Signature 1.1 §6.4.3).
	ecValue  func(r, s *big.Int, size int) []byte
	refExtra string // raw XML appended inside the Reference
	siExtra  string // raw XML appended inside SignedInfo, after the Reference
	sigExtra string // raw XML appended inside Signature, after SignatureValue
	siFirst  string // raw XML inserted inside SignedInfo before CanonicalizationMethod
}

func rvStr(s string) *string { return &s }

// rvDetached returns el detached with every namespace declaration in scope
// (goxmldsig's own way of canonicalizing an element of a document).
func rvDetached(t testing.TB, el *etree.Element) *etree.Element {
	t.Helper()
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		t.Fatal(err)
	}
	det, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		t.Fatal(err)
	}
	return det
}

// rvCanon canonicalizes el (in its document) with goxmldsig for alg.
func rvCanon(t testing.TB, el *etree.Element, alg string, prefixList *string) []byte {
	t.Helper()
	det := rvDetached(t, el)
	var c dsig.Canonicalizer
	switch alg {
	case algC14N10, algC14N10Comments, rvEnveloped:
		c = dsig.MakeC14N10RecCanonicalizer()
	case algC14N11, algC14N11Comments:
		c = dsig.MakeC14N11Canonicalizer()
	default:
		pl := ""
		if prefixList != nil {
			pl = *prefixList
		}
		c = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(pl)
	}
	out, err := c.Canonicalize(det)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var rvHashes = map[string]crypto.Hash{
	"http://www.w3.org/2000/09/xmldsig#sha1": crypto.SHA1,
	rvSHA256:                                 crypto.SHA256,
	"http://www.w3.org/2001/04/xmldsig-more#sha384": crypto.SHA384,
	"http://www.w3.org/2001/04/xmlenc#sha512":       crypto.SHA512,
}

// rvSign gives el (an element of a document, with an ID and an Issuer
// child) an enveloped signature as spec says, placed after the Issuer.
// It returns the Signature element.
func rvSign(t testing.TB, idp *samltest.IdP, el *etree.Element, spec rvSig) *etree.Element {
	t.Helper()
	if spec.key == nil {
		spec.key = idp.Signer.Key
	}
	if spec.transforms == nil {
		spec.transforms = []string{rvEnveloped, rvExc}
	}
	if spec.c14n == "" {
		spec.c14n = rvExc
	}
	if spec.digestURI == "" {
		spec.digestURI = rvSHA256
	}
	if spec.digestHash == 0 {
		spec.digestHash = rvHashes[spec.digestURI]
		if spec.digestHash == 0 {
			spec.digestHash = crypto.SHA256
		}
	}
	if spec.signHash == 0 {
		spec.signHash = crypto.SHA256
	}
	if spec.methodURI == "" {
		switch spec.key.(type) {
		case *ecdsa.PrivateKey:
			spec.methodURI = rvECDSA256
		case []byte:
			spec.methodURI = rvHMAC256
		default:
			spec.methodURI = rvRSA256
		}
	}
	if spec.uri == nil {
		spec.uri = rvStr("#" + el.SelectAttrValue("ID", ""))
	}
	p, decl := "ds:", `xmlns:ds="`+nsDSig+`"`
	switch spec.prefix {
	case "":
	case "-":
		p, decl = "", `xmlns="`+nsDSig+`"`
	default:
		p, decl = spec.prefix+":", `xmlns:`+spec.prefix+`="`+nsDSig+`"`
	}

	// The digest of el as it is now, without the signature: what the
	// enveloped-signature transform leaves.
	octets := spec.digestOf
	if octets == nil {
		octets = rvCanon(t, el, spec.transforms[len(spec.transforms)-1], spec.prefixList)
	}
	h := spec.digestHash.New()
	h.Write(octets)
	digest := base64.StdEncoding.EncodeToString(h.Sum(nil))

	var b strings.Builder
	fmt.Fprintf(&b, `<%sSignature %s><%sSignedInfo>%s<%sCanonicalizationMethod Algorithm="%s">`, p, decl, p, spec.siFirst, p, spec.c14n)
	if spec.siPrefixes != nil {
		fmt.Fprintf(&b, `<ec:InclusiveNamespaces xmlns:ec="%s" PrefixList="%s"/>`, nsExcC14N, *spec.siPrefixes)
	}
	fmt.Fprintf(&b, `</%sCanonicalizationMethod><%sSignatureMethod Algorithm="%s"/><%sReference URI="%s"><%sTransforms>`,
		p, p, spec.methodURI, p, *spec.uri, p)
	for i, tr := range spec.transforms {
		fmt.Fprintf(&b, `<%sTransform Algorithm="%s">`, p, tr)
		if i == len(spec.transforms)-1 && spec.prefixList != nil {
			fmt.Fprintf(&b, `<ec:InclusiveNamespaces xmlns:ec="%s" PrefixList="%s"/>`, nsExcC14N, *spec.prefixList)
		}
		fmt.Fprintf(&b, `</%sTransform>`, p)
	}
	fmt.Fprintf(&b, `</%sTransforms><%sDigestMethod Algorithm="%s"/><%sDigestValue>%s</%sDigestValue>%s</%sReference>%s</%sSignedInfo><%sSignatureValue>SIG</%sSignatureValue>%s</%sSignature>`,
		p, p, spec.digestURI, p, digest, p, spec.refExtra, p, spec.siExtra, p, p, p, spec.sigExtra, p)
	sd := etree.NewDocument()
	if err := sd.ReadFromString(b.String()); err != nil {
		t.Fatalf("signature XML: %v\n%s", err, b.String())
	}
	sig := sd.Root()
	sd.RemoveChild(sig)
	at := 0
	if iss := rvChild(el, "Issuer"); iss != nil {
		at = iss.Index() + 1
	}
	el.InsertChildAt(at, sig)

	// Sign SignedInfo's canonical form, in place.
	var si, value *etree.Element
	for _, ch := range sig.ChildElements() {
		switch ch.Tag {
		case "SignedInfo":
			si = ch
		case "SignatureValue":
			value = ch
		}
	}
	raw := rvCanon(t, si, spec.c14n, spec.siPrefixes)
	hh := spec.signHash.New()
	hh.Write(raw)
	hashed := hh.Sum(nil)
	var out []byte
	var err error
	switch k := spec.key.(type) {
	case *rsa.PrivateKey:
		out, err = rsa.SignPKCS1v15(rand.Reader, k, spec.signHash, hashed)
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k, hashed)
		size := (k.Curve.Params().BitSize + 7) / 8
		if spec.ecValue != nil {
			out = spec.ecValue(r, s, size)
		} else {
			out = make([]byte, 2*size)
			r.FillBytes(out[:size])
			s.FillBytes(out[size:])
		}
	case []byte:
		m := hmac.New(spec.signHash.New, k)
		m.Write(raw)
		out = m.Sum(nil)
	default:
		t.Fatalf("key type %T", k)
	}
	if err != nil {
		t.Fatal(err)
	}
	value.SetText(base64.StdEncoding.EncodeToString(out))
	return sig
}

// rvChild returns el's first child element with local name tag.
func rvChild(el *etree.Element, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

// rvFind returns el and its descendants with local name tag (all of
// them for ""), in document order.
func rvFind(el *etree.Element, tag string) []*etree.Element {
	var out []*etree.Element
	if el.Tag == tag || tag == "" {
		out = append(out, el)
	}
	for _, c := range el.ChildElements() {
		out = append(out, rvFind(c, tag)...)
	}
	return out
}

// rvDoc is a response under construction: the unsigned document for the
// fixture's flow, its Response and Assertion elements.
type rvDoc struct {
	doc       *etree.Document
	resp, ass *etree.Element
}

// rvUnsigned builds an unsigned response for o, with the assertion mod
// (if any) applied.
func rvUnsigned(f *fixture, o samltest.Options, mod func(a *etree.Element)) *rvDoc {
	o.SignAssertion, o.SignResponse, o.EncryptTo = false, false, nil
	doc := f.idp.Response(o)
	d := &rvDoc{doc: doc, resp: doc.Root(), ass: rvChild(doc.Root(), "Assertion")}
	if mod != nil {
		mod(d.ass)
	}
	return d
}

func (d *rvDoc) bytes() []byte { return samltest.Bytes(d.doc) }

// rvSigned returns a response for o with the assertion signed (spec), and
// the Response too when signResponse.
func rvSigned(t testing.TB, f *fixture, o samltest.Options, assertion *rvSig, response *rvSig) *rvDoc {
	t.Helper()
	d := rvUnsigned(f, o, nil)
	if assertion != nil {
		rvSign(t, f.idp, d.ass, *assertion)
	}
	if response != nil {
		rvSign(t, f.idp, d.resp, *response)
	}
	return d
}

// rvRefused asserts Finish refuses doc (with want, if not nil) and returns
// no identity; the public message must not leak the cause.
func rvRefused(t testing.TB, f *fixture, doc []byte, want error) {
	t.Helper()
	id, err := f.finish(doc)
	if err == nil || id != nil {
		t.Fatalf("ACCEPTED: identity %+v (err %v)\n%s", id, err, doc)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("refused for %v, want %v", err, want)
	}
	if msg := gatehouse.ErrorMessage(err); msg == "" || strings.Contains(msg, "saml:") {
		t.Fatalf("public message %q", msg)
	}
	t.Logf("refused: %v", err)
}

// rvAccepted asserts Finish accepts doc for subject.
func rvAccepted(t testing.TB, f *fixture, doc []byte, subject string) {
	t.Helper()
	id, err := f.finish(doc)
	if err != nil {
		t.Fatalf("valid control refused: %v\n%s", err, doc)
	}
	if id.Subject != subject {
		t.Fatalf("subject %q, want %q", id.Subject, subject)
	}
}

// rvNotEvil asserts Finish either refuses doc or accepts it with the
// original identity: the attacker's values must never come out.
func rvNotEvil(t testing.TB, f *fixture, doc []byte) {
	t.Helper()
	id, err := f.finish(doc)
	if err != nil {
		t.Logf("refused: %v", err)
		return
	}
	if id.Subject != rvSubject || id.Email != "ana@acme.com" || strings.Contains(fmt.Sprint(id.Raw), "evil") {
		t.Fatalf("ATTACKER IDENTITY ACCEPTED: %+v", id)
	}
	t.Logf("accepted with the signed identity")
}

// TestReviewSignerControls: rvSign's signatures (goxmldsig canonical
// forms) verify, in every shape the verifier should accept; these are the
// baselines the attacks below modify.
func TestReviewSignerControls(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name      string
		assertion *rvSig
		response  *rvSig
	}{
		{"assertion signed", &rvSig{}, nil},
		{"response signed", nil, &rvSig{}},
		{"both signed", &rvSig{}, &rvSig{}},
		{"dsig namespace on another prefix", &rvSig{prefix: "dsig"}, nil},
		{"dsig namespace as the default namespace", &rvSig{prefix: "-"}, nil},
		{"response signed, dsig as the default namespace", nil, &rvSig{prefix: "-"}},
		{"inclusive C14N 1.0 for SignedInfo", &rvSig{c14n: algC14N10}, nil},
		{"enveloped-signature only (inclusive C14N 1.0 by default), response", nil, &rvSig{transforms: []string{rvEnveloped}}},
		{"inclusive C14N 1.0 transform, response", nil, &rvSig{transforms: []string{rvEnveloped, algC14N10}}},
		{"C14N 1.1 transform, response", nil, &rvSig{transforms: []string{rvEnveloped, algC14N11}}},
		{"exc-c14n#WithComments (there are no comments)", &rvSig{transforms: []string{rvEnveloped, algExcC14NComments}}, nil},
		{"InclusiveNamespaces PrefixList on the transform", &rvSig{prefixList: rvStr("xs xsi samlp")}, nil},
		{"InclusiveNamespaces PrefixList on SignedInfo", &rvSig{siPrefixes: rvStr("samlp saml")}, nil},
		{"SHA-512, RSA-SHA512", &rvSig{digestURI: "http://www.w3.org/2001/04/xmlenc#sha512",
			methodURI: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512", signHash: crypto.SHA512}, nil},
		{"an attacker's certificate in KeyInfo is ignored", &rvSig{sigExtra: rvKeyInfo(samltest.NewSigner("Attacker", 2048).Cert)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rvAccepted(t, f, rvSigned(t, f, f.opts(), tc.assertion, tc.response).bytes(), rvSubject)
		})
	}
	t.Run("samltest's goxmldsig signatures", func(t *testing.T) {
		rvAccepted(t, f, samltest.Bytes(f.idp.Response(signedBoth(f.opts()))), rvSubject)
	})
}

func rvKeyInfo(c *x509.Certificate) string {
	return `<ds:KeyInfo xmlns:ds="` + nsDSig + `"><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(c.Raw) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo>`
}

// rvReplace replaces the first old in doc (which must be there) by new.
func rvReplace(t testing.TB, doc []byte, old, new string) []byte {
	t.Helper()
	if !strings.Contains(string(doc), old) {
		t.Fatalf("rvReplace: %q not in\n%s", old, doc)
	}
	return []byte(strings.Replace(string(doc), old, new, 1))
}

// rvParse parses serialized XML into a detached element.
func rvParse(t testing.TB, x string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(x); err != nil {
		t.Fatalf("%v\n%s", err, x)
	}
	el := d.Root()
	d.RemoveChild(el)
	return el
}

// rvEvilAssertion is an unsigned copy of a (without its signature), with a
// new ID and the attacker's NameID and email.
func rvEvilAssertion(a *etree.Element) *etree.Element {
	e := a.Copy()
	if s := rvChild(e, "Signature"); s != nil {
		e.RemoveChild(s)
	}
	e.CreateAttr("ID", samltest.ID())
	rvSetEvil(e)
	return e
}

// rvSetEvil puts the attacker's identity into every NameID and email
// attribute value below el.
func rvSetEvil(el *etree.Element) {
	for _, n := range rvFind(el, "NameID") {
		n.SetText(rvEvil)
	}
	for _, a := range rvFind(el, "Attribute") {
		if a.SelectAttrValue("Name", "") == "email" {
			for _, v := range rvFind(a, "AttributeValue") {
				v.SetText(rvEvil)
			}
		}
	}
}

type rvVerdict int

const (
	rvRefuse rvVerdict = iota // refused (with want, if set)
	rvSafe                    // refused, or accepted with the signed identity only
	rvAccept                  // accepted with the signed identity (a valid control)
)

type rvCase struct {
	name    string
	doc     func(t *testing.T) []byte
	verdict rvVerdict
	want    error
}

func rvRun(t *testing.T, f *fixture, cases []rvCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc(t)
			switch tc.verdict {
			case rvRefuse:
				rvRefused(t, f, doc, tc.want)
			case rvSafe:
				rvNotEvil(t, f, doc)
			case rvAccept:
				rvAccepted(t, f, doc, rvSubject)
			}
		})
	}
}

// TestReviewSignatureWrapping: XSW1-8 (Somorovsky et al. 2012, SAML
// Raider) and further wrappings, against a signed Response, a signed
// Assertion and both; crewjam/saml GHSA-4hq8-gmxx-h6w9 (CVE-2022-41912,
// several assertions), samlify CVE-2025-47949 (the signed assertion
// verified, another read).
func TestReviewSignatureWrapping(t *testing.T) {
	f := newFixture(t, nil)
	signedA := func(t *testing.T) *rvDoc { return rvSigned(t, f, f.opts(), &rvSig{}, nil) }
	signedR := func(t *testing.T) *rvDoc { return rvSigned(t, f, f.opts(), nil, &rvSig{}) }
	signedBothD := func(t *testing.T) *rvDoc { return rvSigned(t, f, f.opts(), &rvSig{}, &rvSig{}) }
	var cases []rvCase
	for n := 1; n <= 8; n++ {
		for _, base := range []string{"response", "assertion", "both"} {
			if n <= 2 && base == "assertion" || n > 2 && base == "response" {
				continue
			}
			n, base := n, base
			cases = append(cases, rvCase{name: fmt.Sprintf("XSW%d signed %s", n, base), doc: func(t *testing.T) []byte {
				o := f.opts()
				o.SignResponse = base != "assertion"
				o.SignAssertion = base != "response"
				return samltest.Bytes(samltest.XSW(n, f.idp.Response(o), rvEvil))
			}})
		}
	}
	mk := func(name string, base func(*testing.T) *rvDoc, mut func(t *testing.T, d *rvDoc)) rvCase {
		return rvCase{name: name, doc: func(t *testing.T) []byte { d := base(t); mut(t, d); return d.bytes() }}
	}
	cases = append(cases,
		mk("evil unsigned assertion after the signed one", signedA, func(t *testing.T, d *rvDoc) {
			d.resp.AddChild(rvEvilAssertion(d.ass))
		}),
		mk("evil unsigned assertion before the signed one", signedA, func(t *testing.T, d *rvDoc) {
			d.resp.InsertChildAt(d.ass.Index(), rvEvilAssertion(d.ass))
		}),
		mk("signed response: evil assertion appended", signedR, func(t *testing.T, d *rvDoc) {
			d.resp.AddChild(rvEvilAssertion(d.ass))
		}),
		mk("signed response: its assertion replaced by an evil one", signedR, func(t *testing.T, d *rvDoc) {
			d.resp.InsertChildAt(d.ass.Index(), rvEvilAssertion(d.ass))
			d.resp.RemoveChild(d.ass)
		}),
		mk("signed assertion moved into the evil assertion's Advice", signedA, func(t *testing.T, d *rvDoc) {
			e := rvEvilAssertion(d.ass)
			adv := e.CreateElement("saml:Advice")
			adv.AddChild(d.ass.Copy())
			d.resp.InsertChildAt(d.ass.Index(), e)
			d.resp.RemoveChild(d.ass)
		}),
		mk("signed assertion moved into samlp:Status/StatusDetail", signedA, func(t *testing.T, d *rvDoc) {
			st := rvChild(d.resp, "Status")
			st.CreateElement("samlp:StatusDetail").AddChild(d.ass.Copy())
			d.resp.InsertChildAt(d.ass.Index(), rvEvilAssertion(d.ass))
			d.resp.RemoveChild(d.ass)
		}),
		mk("signed assertion in an unknown wrapper element", signedA, func(t *testing.T, d *rvDoc) {
			w := etree.NewElement("x:Wrapper")
			w.CreateAttr("xmlns:x", "urn:x")
			w.AddChild(d.ass.Copy())
			d.resp.InsertChildAt(d.ass.Index(), w)
			d.resp.InsertChildAt(d.ass.Index(), rvEvilAssertion(d.ass))
			d.resp.RemoveChild(d.ass)
		}),
		mk("signed assertion inside a fake ds:Signature/ds:Object of the Response", signedA, func(t *testing.T, d *rvDoc) {
			sig := rvParse(t, `<ds:Signature xmlns:ds="`+nsDSig+`"><ds:Object/></ds:Signature>`)
			rvChild(sig, "Object").AddChild(d.ass.Copy())
			d.resp.InsertChildAt(1, sig)
			d.resp.InsertChildAt(d.ass.Index(), rvEvilAssertion(d.ass))
			d.resp.RemoveChild(d.ass)
		}),
		mk("signed response: evil assertion inside the Response signature's ds:Object", signedR, func(t *testing.T, d *rvDoc) {
			obj := rvChild(d.resp, "Signature").CreateElement("ds:Object")
			obj.AddChild(rvEvilAssertion(d.ass))
		}),
		mk("signed assertion: evil assertion inside its own signature's ds:Object", signedA, func(t *testing.T, d *rvDoc) {
			obj := rvChild(d.ass, "Signature").CreateElement("ds:Object")
			obj.AddChild(rvEvilAssertion(d.ass))
		}),
		mk("the original signed Response hidden in an evil Response's Extensions", signedBothD, func(t *testing.T, d *rvDoc) {
			orig := d.resp.Copy()
			d.resp.CreateAttr("ID", samltest.ID())
			d.resp.RemoveChild(rvChild(d.resp, "Signature"))
			e := rvEvilAssertion(d.ass)
			d.resp.InsertChildAt(d.ass.Index(), e)
			d.resp.RemoveChild(d.ass)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(orig)
			d.resp.InsertChildAt(1, ext)
		}),
		mk("the original signed Response as the only child of an evil Response", signedR, func(t *testing.T, d *rvDoc) {
			orig := d.resp.Copy()
			d.resp.CreateAttr("ID", samltest.ID())
			d.resp.RemoveChild(rvChild(d.resp, "Signature"))
			d.resp.RemoveChild(d.ass)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(orig)
			d.resp.InsertChildAt(1, ext)
		}),
		mk("assertion's signature moved to the Response (Reference still #assertion)", signedA, func(t *testing.T, d *rvDoc) {
			sig := rvChild(d.ass, "Signature")
			d.ass.RemoveChild(sig)
			d.resp.InsertChildAt(1, sig)
			rvSetEvil(d.ass)
		}),
		mk("assertion's signature copied to the Response too", signedA, func(t *testing.T, d *rvDoc) {
			d.resp.InsertChildAt(1, rvChild(d.ass, "Signature").Copy())
		}),
		mk("Response signature moved onto the unsigned assertion", signedR, func(t *testing.T, d *rvDoc) {
			sig := rvChild(d.resp, "Signature")
			d.resp.RemoveChild(sig)
			d.ass.InsertChildAt(1, sig)
		}),
		mk("Response signature moved onto an evil assertion", signedR, func(t *testing.T, d *rvDoc) {
			sig := rvChild(d.resp, "Signature")
			d.resp.RemoveChild(sig)
			rvSetEvil(d.ass)
			d.ass.InsertChildAt(1, sig)
		}),
		mk("evil assertion given the signed one's ID and signature; the signed one in Extensions", signedA, func(t *testing.T, d *rvDoc) {
			e := d.ass.Copy()
			rvSetEvil(e)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(d.ass.Copy())
			d.resp.InsertChildAt(1, ext)
			d.resp.InsertChildAt(d.ass.Index(), e)
			d.resp.RemoveChild(d.ass)
		}),
		mk("signed assertion's NameID changed (no wrapping)", signedA, func(t *testing.T, d *rvDoc) { rvSetEvil(d.ass) }),
		mk("signed response's NameID changed (no wrapping)", signedR, func(t *testing.T, d *rvDoc) { rvSetEvil(d.ass) }),
		mk("both signed: NameID changed, assertion signature removed", signedBothD, func(t *testing.T, d *rvDoc) {
			d.ass.RemoveChild(rvChild(d.ass, "Signature"))
			rvSetEvil(d.ass)
		}),
		mk("both signed: Response signature removed, assertion's kept (valid)", signedBothD, func(t *testing.T, d *rvDoc) {
			d.resp.RemoveChild(rvChild(d.resp, "Signature"))
		}),
		mk("signed response, signature removed", signedR, func(t *testing.T, d *rvDoc) {
			d.resp.RemoveChild(rvChild(d.resp, "Signature"))
		}),
	)
	// The two valid rearrangements stay valid: the verifier is not
	// refusing everything.
	n := len(cases)
	cases[n-2].verdict = rvAccept
	cases = append(cases,
		rvCase{name: "signed response: Signature moved to the end (still enveloped, valid)", verdict: rvAccept, doc: func(t *testing.T) []byte {
			d := signedR(t)
			sig := rvChild(d.resp, "Signature")
			d.resp.RemoveChild(sig)
			d.resp.AddChild(sig)
			return d.bytes()
		}},
		rvCase{name: "an evil assertion in another namespace before the signed one (not read)", verdict: rvSafe, doc: func(t *testing.T) []byte {
			d := signedA(t)
			e := rvEvilAssertion(d.ass)
			e.Space = "x"
			e.CreateAttr("xmlns:x", "urn:evil")
			d.resp.InsertChildAt(d.ass.Index(), e)
			return d.bytes()
		}},
		rvCase{name: "an evil SAML 1.1 assertion beside the signed one (not read)", verdict: rvSafe, doc: func(t *testing.T) []byte {
			d := signedA(t)
			e := rvEvilAssertion(d.ass)
			e.Space = "s1"
			e.CreateAttr("xmlns:s1", "urn:oasis:names:tc:SAML:1.0:assertion")
			d.resp.AddChild(e)
			return d.bytes()
		}},
		rvCase{name: "an evil unprefixed Assertion in the SAML namespace (default namespace)", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d := signedA(t)
			d.resp.AddChild(rvParse(t, `<Assertion xmlns="`+nsAssertion+`" ID="_e" Version="2.0"><Subject><NameID>`+rvEvil+`</NameID></Subject></Assertion>`))
			return d.bytes()
		}},
		rvCase{name: "EncryptedAssertion beside the signed plain assertion", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d := signedA(t)
			e := rvEvilAssertion(d.ass)
			d.resp.AddChild(samltest.Encrypt(e, f.c.(*Connector).encryption[0].cert, nil))
			return d.bytes()
		}},
	)
	rvRun(t, f, cases)
}

// TestReviewIDsAndReferences: duplicate IDs, ID attribute name tricks and
// Reference URIs other than "#" + the signed element's ID (saml-core
// §5.4.2). Each forged signature is otherwise valid: made by the IdP's key
// over the element's real canonical form.
func TestReviewIDsAndReferences(t *testing.T) {
	f := newFixture(t, nil)
	signedA := func(t *testing.T) *rvDoc { return rvSigned(t, f, f.opts(), &rvSig{}, nil) }
	// withAttr signs the assertion after adding an attribute, with the
	// Reference URI pointing at "#X".
	withAttr := func(attr, uri string, response bool) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			el := d.ass
			if response {
				el = d.resp
			}
			if attr != "" {
				k, v, _ := strings.Cut(attr, "=")
				el.CreateAttr(k, v)
			}
			spec := rvSig{uri: rvStr(uri)}
			rvSign(t, f.idp, el, spec)
			return d.bytes()
		}
	}
	cases := []rvCase{
		{name: "control: ID plus an unrelated foo:ID attribute, Reference #ID", verdict: rvAccept, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.ass.CreateAttr("xmlns:foo", "urn:foo")
			d.ass.CreateAttr("foo:ID", "_other")
			rvSign(t, f.idp, d.ass, rvSig{})
			return d.bytes()
		}},
		{name: "Reference to an Id attribute (not ID)", want: ErrSignature, doc: withAttr("Id=_x1", "#_x1", false)},
		{name: "Reference to an id attribute", want: ErrSignature, doc: withAttr("id=_x1", "#_x1", false)},
		{name: "Reference to an xml:id attribute", want: ErrSignature, doc: withAttr("xml:id=_x1", "#_x1", false)},
		{name: "Reference to a namespaced foo:ID attribute", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.ass.CreateAttr("xmlns:foo", "urn:foo")
			d.ass.CreateAttr("foo:ID", "_x1")
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("#_x1")})
			return d.bytes()
		}},
		{name: "Reference to a saml:ID attribute (the SAML namespace)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.ass.CreateAttr("saml:ID", "_x1")
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("#_x1")})
			return d.bytes()
		}},
		{name: "assertion without ID, only foo:ID, Reference to it", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			id := d.ass.SelectAttrValue("ID", "")
			d.ass.RemoveAttr("ID")
			d.ass.CreateAttr("xmlns:foo", "urn:foo")
			d.ass.CreateAttr("foo:ID", id)
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("#" + id)})
			return d.bytes()
		}},
		{name: "Reference URI empty (whole document)", want: ErrSignature, doc: withAttr("", "", false)},
		{name: "Reference URI empty on the Response", want: ErrSignature, doc: withAttr("", "", true)},
		{name: "Reference URI #xpointer(/)", want: ErrSignature, doc: withAttr("", "#xpointer(/)", false)},
		{name: "Reference URI #xpointer(id('ID'))", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("#xpointer(id('" + d.ass.SelectAttrValue("ID", "") + "'))")})
			return d.bytes()
		}},
		{name: "Reference URI external (https)", want: ErrSignature, doc: withAttr("", "https://idp.example.org/signed.xml", false)},
		{name: "Reference URI external with the fragment", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("https://idp.example.org/x#" + d.ass.SelectAttrValue("ID", ""))})
			return d.bytes()
		}},
		{name: "Reference URI #ID with a trailing space", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("#" + d.ass.SelectAttrValue("ID", "") + " ")})
			return d.bytes()
		}},
		{name: "Reference URI percent-encoded %23ID", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("%23" + d.ass.SelectAttrValue("ID", ""))})
			return d.bytes()
		}},
		{name: "Reference without URI attribute", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			doc := d.bytes()
			return rvReplace(t, doc, `<ds:Reference URI="#`+d.ass.SelectAttrValue("ID", "")+`">`, `<ds:Reference>`)
		}},
		{name: "assertion's Signature references the Response's ID (assertion unsigned)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			// Sign the Response's canonical form, but place the signature
			// in the assertion.
			octets := rvCanon(t, d.resp, rvExc, nil)
			rvSign(t, f.idp, d.ass, rvSig{uri: rvStr("#" + d.resp.SelectAttrValue("ID", "")), digestOf: octets})
			return d.bytes()
		}},
		{name: "Response's Signature references the assertion (Response signed over the assertion only)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			octets := rvCanon(t, d.ass, rvExc, nil)
			rvSign(t, f.idp, d.resp, rvSig{uri: rvStr("#" + d.ass.SelectAttrValue("ID", "")), digestOf: octets})
			rvSetEvil(d.ass)
			return d.bytes()
		}},
		{name: "two References: #ID and the empty URI", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{siExtra: `<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="` + rvEnveloped + `"/></ds:Transforms><ds:DigestMethod Algorithm="` + rvSHA256 + `"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>`})
			return d.bytes()
		}},
		{name: "two References: the same #ID twice", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			doc := string(d.bytes())
			i := strings.Index(doc, "<ds:Reference ")
			j := strings.Index(doc, "</ds:Reference>") + len("</ds:Reference>")
			ref := doc[i:j]
			return []byte(doc[:j] + ref + doc[j:]) // SignatureValue now wrong too, refused either way
		}},
		{name: "duplicate ID: an element in Extensions carries the signed ID", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			ext := etree.NewElement("samlp:Extensions")
			x := ext.CreateElement("x:y")
			x.CreateAttr("xmlns:x", "urn:x")
			x.CreateAttr("ID", d.ass.SelectAttrValue("ID", ""))
			d.resp.InsertChildAt(1, ext)
			return d.bytes()
		}},
		{name: "duplicate ID: the Response carries the assertion's ID", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			d.resp.CreateAttr("ID", d.ass.SelectAttrValue("ID", ""))
			return d.bytes()
		}},
		{name: "duplicate ID: an element in the signature's ds:Object carries the signed ID", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			obj := rvChild(d.ass, "Signature").CreateElement("ds:Object")
			obj.CreateElement("ds:Manifest").CreateAttr("ID", d.ass.SelectAttrValue("ID", ""))
			return d.bytes()
		}},
		{name: "duplicate ID: an evil assertion with the signed ID beside it", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d := signedA(t)
			e := rvEvilAssertion(d.ass)
			e.CreateAttr("ID", d.ass.SelectAttrValue("ID", ""))
			d.resp.InsertChildAt(d.ass.Index(), e)
			return d.bytes()
		}},
		{name: "duplicate ID: signed Response's ID on an element of the Response signature's Object", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), nil, &rvSig{})
			obj := rvChild(d.resp, "Signature").CreateElement("ds:Object")
			obj.CreateElement("ds:Manifest").CreateAttr("ID", d.resp.SelectAttrValue("ID", ""))
			return d.bytes()
		}},
		{name: "ID with XPath-injection characters (ruby-saml CVE-2016-5697), signed: harmless", verdict: rvAccept, doc: func(t *testing.T) []byte {
			o := f.opts()
			o.AssertionID = `_a' or '1'='1`
			return rvSigned(t, f, o, &rvSig{}, nil).bytes()
		}},
	}
	rvRun(t, f, cases)
}

// TestReviewSignatureShape: several Signature elements, a Signature in the
// wrong namespace, and malformed Signature/SignedInfo/Reference children
// (goxmldsig GHSA-q547-gmf8-8jr7 / CVE-2020-15216 picked the wrong one of
// several signatures; GHSA-2xp6-2gv9-xmhr / CVE-2023-48703 crashed on a
// Signature without SignedInfo; ruby-saml CVE-2024-45409 read a
// DigestValue from anywhere in the document; xml-crypto CVE-2025-29774 and
// CVE-2025-29775 read a DigestValue hidden behind a comment and one of
// several SignedInfo).
func TestReviewSignatureShape(t *testing.T) {
	f := newFixture(t, nil)
	signedA := func(t *testing.T) *rvDoc { return rvSigned(t, f, f.opts(), &rvSig{}, nil) }
	// sigOf returns the signed document and its serialized assertion
	// Signature, for string surgery.
	mut := func(edit func(t *testing.T, doc []byte, d *rvDoc) []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { d := signedA(t); return edit(t, d.bytes(), d) }
	}
	junkSig := `<ds:Signature xmlns:ds="` + nsDSig + `"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="` + rvExc + `"/><ds:SignatureMethod Algorithm="` + rvRSA256 + `"/><ds:Reference URI="#_nothing"><ds:Transforms><ds:Transform Algorithm="` + rvEnveloped + `"/></ds:Transforms><ds:DigestMethod Algorithm="` + rvSHA256 + `"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>`
	cases := []rvCase{
		{name: "a second, junk Signature after the valid one", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			d.ass.InsertChildAt(rvChild(d.ass, "Signature").Index()+1, rvParse(t, junkSig))
			return d.bytes()
		}},
		{name: "a junk Signature before the valid one", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			d.ass.InsertChildAt(0, rvParse(t, junkSig))
			return d.bytes()
		}},
		{name: "the valid Signature twice", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			sig := rvChild(d.ass, "Signature")
			d.ass.InsertChildAt(sig.Index()+1, sig.Copy())
			return d.bytes()
		}},
		{name: "a second Signature nested in the Subject, referencing the assertion", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			rvChild(d.ass, "Subject").AddChild(rvChild(d.ass, "Signature").Copy())
			return d.bytes()
		}},
		{name: "the Signature moved into the Subject (not enveloped)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			sig := rvChild(d.ass, "Signature")
			d.ass.RemoveChild(sig)
			rvChild(d.ass, "Subject").AddChild(sig)
			return d.bytes()
		}},
		{name: "the Signature element in another namespace (xmlns:ds rebound)", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			return rvReplace(t, doc, `<ds:Signature xmlns:ds="`+nsDSig+`">`, `<ds:Signature xmlns:ds="urn:evil-dsig">`)
		})},
		{name: "a Signature in another namespace beside the valid one", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			d.ass.AddChild(rvParse(t, strings.ReplaceAll(junkSig, nsDSig, "urn:evil-dsig")))
			return d.bytes()
		}},
		{name: "two SignedInfo (xml-crypto CVE-2025-29775)", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			s := string(doc)
			i, j := strings.Index(s, "<ds:SignedInfo>"), strings.Index(s, "</ds:SignedInfo>")+len("</ds:SignedInfo>")
			return []byte(s[:i] + s[i:j] + s[i:j] + s[j:])
		})},
		{name: "an evil SignedInfo before the signed one", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			return rvReplace(t, doc, "<ds:SignedInfo>", `<ds:SignedInfo><ds:CanonicalizationMethod Algorithm="`+rvExc+`"/></ds:SignedInfo><ds:SignedInfo>`)
		})},
		{name: "two SignatureValue", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			return rvReplace(t, doc, "<ds:SignatureValue>", "<ds:SignatureValue>AAAA</ds:SignatureValue><ds:SignatureValue>")
		})},
		{name: "no SignedInfo (goxmldsig CVE-2023-48703)", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			s := string(doc)
			i, j := strings.Index(s, "<ds:SignedInfo>"), strings.Index(s, "</ds:SignedInfo>")+len("</ds:SignedInfo>")
			return []byte(s[:i] + s[j:])
		})},
		{name: "no SignatureValue", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			s := string(doc)
			i, j := strings.Index(s, "<ds:SignatureValue>"), strings.Index(s, "</ds:SignatureValue>")+len("</ds:SignatureValue>")
			return []byte(s[:i] + s[j:])
		})},
		{name: "empty SignatureValue", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			s := string(doc)
			i, j := strings.Index(s, "<ds:SignatureValue>")+len("<ds:SignatureValue>"), strings.Index(s, "</ds:SignatureValue>")
			return []byte(s[:i] + s[j:])
		})},
		{name: "SignatureValue not base64", want: ErrSignature, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			return rvReplace(t, doc, "<ds:SignatureValue>", "<ds:SignatureValue>!!")
		})},
		{name: "empty Signature element", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.ass.InsertChildAt(1, rvParse(t, `<ds:Signature xmlns:ds="`+nsDSig+`"/>`))
			rvSetEvil(d.ass)
			return d.bytes()
		}},
		{name: "two KeyInfo", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			ki := rvKeyInfo(f.idp.Signer.Cert)
			rvSign(t, f.idp, d.ass, rvSig{sigExtra: ki + ki})
			return d.bytes()
		}},
		{name: "two CanonicalizationMethod", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{siFirst: `<ds:CanonicalizationMethod Algorithm="` + algC14N10 + `"/>`})
			return d.bytes()
		}},
		{name: "two SignatureMethod", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{siExtra: `<ds:SignatureMethod Algorithm="` + rvHMAC256 + `"/>`})
			return d.bytes()
		}},
		{name: "two DigestValue in the Reference", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{refExtra: `<ds:DigestValue>AAAA</ds:DigestValue>`})
			return d.bytes()
		}},
		{name: "two DigestMethod in the Reference", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{refExtra: `<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha512"/>`})
			return d.bytes()
		}},
		{name: "a DigestValue of the evil assertion placed outside the Reference (ruby-saml CVE-2024-45409)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			// The attacker changes the NameID and plants the digest of the
			// changed assertion where a careless XPath (//ds:DigestValue)
			// would find it first.
			sig := rvChild(d.ass, "Signature")
			d.ass.RemoveChild(sig)
			rvSetEvil(d.ass)
			h := crypto.SHA256.New()
			h.Write(rvCanon(t, d.ass, rvExc, nil))
			planted := base64.StdEncoding.EncodeToString(h.Sum(nil))
			d.ass.InsertChildAt(1, sig)
			ext := etree.NewElement("samlp:Extensions")
			ext.CreateElement("ds:DigestValue").SetText(planted)
			ext.CreateAttr("xmlns:ds", nsDSig)
			d.resp.InsertChildAt(1, ext)
			sig.CreateElement("ds:Object").CreateElement("ds:DigestValue").SetText(planted)
			return d.bytes()
		}},
		{name: "DigestValue behind a comment (xml-crypto CVE-2025-29774)", want: ErrMalformed, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			return rvReplace(t, doc, "<ds:DigestValue>", "<ds:DigestValue><!--AAAA-->")
		})},
		{name: "DigestValue as CDATA (same value: still valid)", verdict: rvAccept, doc: mut(func(t *testing.T, doc []byte, d *rvDoc) []byte {
			s := string(doc)
			i := strings.Index(s, "<ds:DigestValue>") + len("<ds:DigestValue>")
			j := strings.Index(s, "</ds:DigestValue>")
			return []byte(s[:i] + "<![CDATA[" + s[i:j] + "]]>" + s[j:])
		})},
		{name: "Manifest with a Reference to the evil content inside ds:Object", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := signedA(t)
			rvSetEvil(d.ass)
			obj := rvChild(d.ass, "Signature").CreateElement("ds:Object")
			obj.CreateElement("ds:Manifest").CreateElement("ds:Reference").CreateAttr("URI", "#"+d.ass.SelectAttrValue("ID", ""))
			return d.bytes()
		}},
	}
	rvRun(t, f, cases)
}

// TestReviewTransformsAndC14N: transforms other than enveloped-signature
// then one canonicalization (saml-core §5.4.4), in the wrong order or
// repeated, and canonicalization tricks (inclusive vs exclusive,
// WithComments, InclusiveNamespaces abuse). The digest is computed so
// that only the rule under test can refuse.
func TestReviewTransformsAndC14N(t *testing.T) {
	f := newFixture(t, nil)
	sign := func(spec rvSig, mod func(d *rvDoc)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			if mod != nil {
				mod(d)
			}
			rvSign(t, f.idp, d.ass, spec)
			return d.bytes()
		}
	}
	const (
		xpath   = "http://www.w3.org/TR/1999/REC-xpath-19991116"
		xslt    = "http://www.w3.org/TR/1999/REC-xslt-19991116"
		base64T = "http://www.w3.org/2000/09/xmldsig#base64"
		filter2 = "http://www.w3.org/2002/06/xmldsig-filter2"
	)
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf("p%d", i)
	}
	cases := []rvCase{
		{name: "XPath transform after enveloped", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvEnveloped, xpath}}, nil)},
		{name: "XPath transform instead of enveloped", want: ErrSignature, doc: sign(rvSig{transforms: []string{xpath, rvExc}}, nil)},
		{name: "XSLT transform", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvEnveloped, xslt}}, nil)},
		{name: "base64 transform", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvEnveloped, base64T}}, nil)},
		{name: "XPath Filter 2.0 transform", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvEnveloped, filter2}}, nil)},
		{name: "unknown transform", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvEnveloped, "urn:evil"}}, nil)},
		{name: "c14n then enveloped (order swapped)", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvExc, rvEnveloped}}, nil)},
		{name: "enveloped twice", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvEnveloped, rvEnveloped}}, nil)},
		{name: "enveloped, c14n, c14n", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvEnveloped, rvExc, rvExc}}, nil)},
		{name: "no transforms at all (empty Transforms)", want: ErrSignature, doc: sign(rvSig{transforms: []string{}, digestOf: []byte("x")}, nil)},
		{name: "only exclusive c14n (no enveloped-signature)", want: ErrSignature, doc: sign(rvSig{transforms: []string{rvExc}}, nil)},
		{name: "a non-Transform element inside Transforms", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			return rvReplace(t, d.bytes(), "</ds:Transforms>", `<ds:XPath>not(ancestor-or-self::ds:Signature)</ds:XPath></ds:Transforms>`)
		}},
		{name: "Transform element in another namespace", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			return rvReplace(t, d.bytes(), `<ds:Transform Algorithm="`+rvEnveloped+`"/>`, `<x:Transform xmlns:x="urn:x" Algorithm="`+rvEnveloped+`"/>`)
		}},
		{name: "inclusive C14N 1.0 transform on the embedded assertion (ancestor namespaces rendered: valid)", verdict: rvAccept,
			doc: sign(rvSig{transforms: []string{rvEnveloped, algC14N10}}, nil)},
		{name: "declared inclusive C14N transform, digest of the exclusive form", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{transforms: []string{rvEnveloped, algC14N10}, digestOf: rvCanon(t, d.ass, rvExc, nil)})
			return d.bytes()
		}},
		{name: "declared exclusive transform, digest of the inclusive form", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{digestOf: rvCanon(t, d.ass, algC14N10, nil)})
			return d.bytes()
		}},
		{name: "declared exclusive SignedInfo c14n, signed over the inclusive form", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{c14n: algC14N10})
			return rvReplace(t, d.bytes(), `<ds:CanonicalizationMethod Algorithm="`+algC14N10+`"/>`, `<ds:CanonicalizationMethod Algorithm="`+rvExc+`"/>`)
		}},
		{name: "unknown SignedInfo CanonicalizationMethod", want: ErrSignature, doc: sign(rvSig{c14n: "urn:evil-c14n"}, nil)},
		{name: "exc-c14n#WithComments with a comment in the NameID", want: ErrMalformed, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			n := rvFind(d.ass, "NameID")[0]
			n.SetText("ana@acme.com")
			n.CreateComment("")
			n.CreateText(".evil.com")
			rvSign(t, f.idp, d.ass, rvSig{transforms: []string{rvEnveloped, algExcC14NComments}})
			return d.bytes()
		}},
		{name: "InclusiveNamespaces PrefixList of 17 prefixes (cost bound)", want: ErrSignature, doc: sign(rvSig{prefixList: rvStr(strings.Join(many, " "))}, nil)},
		{name: "InclusiveNamespaces PrefixList naming prefixes not in scope (harmless)", verdict: rvAccept, doc: sign(rvSig{prefixList: rvStr("nope alsonope")}, nil)},
		{name: "InclusiveNamespaces in the wrong namespace (ignored: digest differs)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{prefixList: rvStr("samlp xs")})
			return rvReplace(t, d.bytes(), `<ec:InclusiveNamespaces xmlns:ec="`+nsExcC14N+`"`, `<ec:InclusiveNamespaces xmlns:ec="urn:evil"`)
		}},
		{name: "PrefixList edited after signing (SignedInfo covers it)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{prefixList: rvStr("xs")})
			return rvReplace(t, d.bytes(), `PrefixList="xs"`, `PrefixList="xs samlp"`)
		}},
		{name: "inclusive c14n of the assertion with xml:base on the Response (refused, not guessed)", want: ErrUnsupported, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.resp.CreateAttr("xml:base", "https://evil.example.com/")
			rvSign(t, f.idp, d.ass, rvSig{transforms: []string{rvEnveloped, algC14N10}, digestOf: []byte{}})
			return d.bytes()
		}},
		{name: "canonicalization error must not digest as the empty string (ruby-saml 2025 libxml2 c14n)", want: ErrUnsupported, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.resp.CreateAttr("xml:space", "preserve")
			rvSign(t, f.idp, d.ass, rvSig{transforms: []string{rvEnveloped}, digestOf: []byte{}})
			return d.bytes()
		}},
		{name: "xml:base / xml:space / xml:lang on the Response, exclusive c14n (not inherited: valid)", verdict: rvAccept, doc: sign(rvSig{}, func(d *rvDoc) {
			d.resp.CreateAttr("xml:base", "https://evil.example.com/")
			d.resp.CreateAttr("xml:space", "preserve")
			d.resp.CreateAttr("xml:lang", "en")
		})},
		{name: "xml:base added to the signed assertion after signing", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			d.ass.CreateAttr("xml:base", "https://evil.example.com/")
			return d.bytes()
		}},
	}
	rvRun(t, f, cases)
}

// TestReviewAlgorithms: SignatureMethod/DigestMethod mismatches, SHA-1
// while refused, HMAC keyed with public material (key confusion: the
// attacker knows the IdP's certificate; CVE-2009-0217 HMACOutputLength),
// unsupported methods, keys that are not the configured IdP's.
func TestReviewAlgorithms(t *testing.T) {
	f := newFixture(t, nil)
	cert := f.idp.Signer.Cert
	pkix, _ := x509.MarshalPKIXPublicKey(cert.PublicKey)
	attacker := samltest.NewSigner("Attacker", 2048)
	sign := func(spec rvSig) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, spec)
			return d.bytes()
		}
	}
	signResp := func(spec rvSig) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.resp, spec)
			return d.bytes()
		}
	}
	certPEM := []byte(f.idp.Signer.CertPEM())
	const (
		hmacSHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
		sha1     = "http://www.w3.org/2000/09/xmldsig#sha1"
		rsaSHA1  = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	)
	cases := []rvCase{
		{name: "HMAC-SHA256 keyed with the IdP certificate (DER)", want: ErrSignature, doc: sign(rvSig{key: cert.Raw})},
		{name: "HMAC-SHA256 keyed with the IdP certificate (PEM)", want: ErrSignature, doc: sign(rvSig{key: certPEM})},
		{name: "HMAC-SHA256 keyed with the IdP public key (PKIX DER)", want: ErrSignature, doc: sign(rvSig{key: pkix})},
		{name: "HMAC-SHA256 keyed with the RSA modulus", want: ErrSignature, doc: sign(rvSig{key: f.idp.Signer.Key.N.Bytes()})},
		{name: "HMAC-SHA256 with an empty key", want: ErrSignature, doc: sign(rvSig{key: []byte{}})},
		{name: "HMAC-SHA256 on the Response", want: ErrSignature, doc: signResp(rvSig{key: cert.Raw})},
		{name: "HMAC-SHA1 keyed with the certificate", want: ErrWeakCrypto, doc: sign(rvSig{key: cert.Raw, methodURI: hmacSHA1, signHash: crypto.SHA1})},
		{name: "HMAC-SHA1 with HMACOutputLength 0 (CVE-2009-0217)", want: ErrWeakCrypto, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{key: cert.Raw, methodURI: hmacSHA1, signHash: crypto.SHA1})
			doc := rvReplace(t, d.bytes(), `<ds:SignatureMethod Algorithm="`+hmacSHA1+`"/>`,
				`<ds:SignatureMethod Algorithm="`+hmacSHA1+`"><ds:HMACOutputLength>0</ds:HMACOutputLength></ds:SignatureMethod>`)
			return doc
		}},
		{name: "SHA-1 digest under RSA-SHA256", want: ErrWeakCrypto, doc: sign(rvSig{digestURI: sha1})},
		{name: "SHA-256 digest under RSA-SHA1", want: ErrWeakCrypto, doc: sign(rvSig{methodURI: rsaSHA1, signHash: crypto.SHA1})},
		{name: "SHA-1 only on the Response signature, assertion signed with SHA-256", want: ErrWeakCrypto, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			rvSign(t, f.idp, d.resp, rvSig{methodURI: rsaSHA1, signHash: crypto.SHA1, digestURI: sha1})
			return d.bytes()
		}},
		{name: "MD5 digest", want: ErrSignature, doc: sign(rvSig{digestURI: "http://www.w3.org/2001/04/xmldsig-more#md5", digestHash: crypto.SHA256})},
		{name: "DigestMethod SHA-256 over a SHA-512 value", want: ErrSignature, doc: sign(rvSig{digestHash: crypto.SHA512})},
		{name: "DigestMethod SHA-512 over a SHA-256 value", want: ErrSignature, doc: sign(rvSig{digestURI: "http://www.w3.org/2001/04/xmlenc#sha512", digestHash: crypto.SHA256})},
		{name: "RSA-SHA256 declared, SignedInfo signed with SHA-512", want: ErrSignature, doc: sign(rvSig{signHash: crypto.SHA512})},
		{name: "RSA-SHA512 declared, SignedInfo signed with SHA-256", want: ErrSignature, doc: sign(rvSig{methodURI: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"})},
		{name: "RSA-PSS (MGF1) method, unsupported", want: ErrSignature, doc: sign(rvSig{methodURI: "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"})},
		{name: "DSA-SHA256 method", want: ErrSignature, doc: sign(rvSig{methodURI: "http://www.w3.org/2009/xmldsig11#dsa-sha256"})},
		{name: "unknown SignatureMethod", want: ErrSignature, doc: sign(rvSig{methodURI: "urn:evil"})},
		{name: "empty SignatureMethod Algorithm", want: ErrSignature, doc: sign(rvSig{methodURI: " "})},
		{name: "ECDSA method over an RSA PKCS#1 signature by the IdP key", want: ErrSignature, doc: sign(rvSig{methodURI: rvECDSA256})},
		{name: "attacker's RSA key, no KeyInfo", want: ErrSignature, doc: sign(rvSig{key: attacker.Key})},
		{name: "attacker's RSA key, attacker certificate in KeyInfo", want: ErrSignature, doc: sign(rvSig{key: attacker.Key, sigExtra: rvKeyInfo(attacker.Cert)})},
		{name: "attacker's RSA key, the IdP's certificate in KeyInfo", want: ErrSignature, doc: sign(rvSig{key: attacker.Key, sigExtra: rvKeyInfo(cert)})},
		{name: "attacker's key signs the Response, IdP-signed assertion inside (both must hold)", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			rvSign(t, f.idp, d.resp, rvSig{key: attacker.Key, sigExtra: rvKeyInfo(attacker.Cert)})
			return d.bytes()
		}},
		{name: "IdP-signed Response, attacker-signed assertion", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{key: attacker.Key})
			rvSign(t, f.idp, d.resp, rvSig{})
			return d.bytes()
		}},
		{name: "SignatureValue of another document by the IdP (right key, wrong SignedInfo)", want: ErrSignature, doc: func(t *testing.T) []byte {
			other := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			rvFind(d.ass, "SignatureValue")[0].SetText(rvFind(other.ass, "SignatureValue")[0].Text())
			return d.bytes()
		}},
	}
	rvRun(t, f, cases)

	t.Run("a 1024-bit IdP key is refused unless allow_short_keys", func(t *testing.T) {
		short := samltest.NewSigner("Short IdP", 1024)
		in := map[string]any{"idp_metadata_xml": nil, "idp_sso_url": f.idp.SSOURL, "idp_entity_id": f.idp.EntityID,
			"idp_certificate": short.CertPEM()}
		raw := map[string]json.RawMessage{}
		for k, v := range in {
			raw[k] = mustJSON(v)
		}
		if _, _, err := Type().Configure(context.Background(), f.env, f.conn, spSecrets, raw); err == nil {
			t.Fatal("a 1024-bit IdP certificate was configured without allow_short_keys")
		}
		in["allow_short_keys"] = true
		g := newFixture(t, in)
		d := rvUnsigned(g, g.opts(), nil)
		rvSign(t, g.idp, d.ass, rvSig{key: short.Key})
		rvAccepted(t, g, d.bytes(), rvSubject)
	})
	t.Run("HMAC-SHA1 stays refused with allow_sha1 on", func(t *testing.T) {
		g := newFixture(t, map[string]any{"allow_sha1": true})
		d := rvUnsigned(g, g.opts(), nil)
		rvSign(t, g.idp, d.ass, rvSig{key: g.idp.Signer.Cert.Raw, methodURI: hmacSHA1, signHash: crypto.SHA1})
		rvRefused(t, g, d.bytes(), ErrSignature)
		d = rvUnsigned(g, g.opts(), nil)
		rvSign(t, g.idp, d.ass, rvSig{methodURI: rsaSHA1, signHash: crypto.SHA1, digestURI: sha1})
		rvAccepted(t, g, d.bytes(), rvSubject)
	})
}

// rvECFixture is a connection to an IdP whose certificate holds an ECDSA
// key on curve.
func rvECFixture(t *testing.T, curve elliptic.Curve) (*fixture, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "EC IdP"},
		NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	idp := samltest.New("https://idp.example.org")
	f := newFixture(t, map[string]any{
		"idp_metadata_xml": nil, "idp_sso_url": idp.SSOURL, "idp_entity_id": idp.EntityID,
		"idp_certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	})
	return f, key
}

// TestReviewECDSAEncodings: ECDSA SignatureValue edge cases. r and s must
// lie in [1, N-1]; the value is r||s of exactly twice the field size, or
// DER (goxmldsig's old form); anything else is refused.
func TestReviewECDSAEncodings(t *testing.T) {
	f, key := rvECFixture(t, elliptic.P256())
	n := key.Curve.Params().N
	rs := func(r, s *big.Int, size int) []byte {
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
	der := func(r, s *big.Int) []byte {
		enc := func(x *big.Int) []byte {
			b := x.Bytes()
			if len(b) == 0 || b[0]&0x80 != 0 {
				b = append([]byte{0}, b...)
			}
			return append([]byte{0x02, byte(len(b))}, b...)
		}
		body := append(enc(r), enc(s)...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	enc := func(e func(r, s *big.Int, size int) []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{key: key, ecValue: e})
			return d.bytes()
		}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	cases := []rvCase{
		{name: "control: r||s", verdict: rvAccept, doc: enc(nil)},
		{name: "control: DER", verdict: rvAccept, doc: enc(func(r, s *big.Int, _ int) []byte { return der(r, s) })},
		{name: "high s (N-s): the same signature's twin, valid ECDSA", verdict: rvAccept, doc: enc(func(r, s *big.Int, size int) []byte {
			return rs(r, new(big.Int).Sub(n, s), size)
		})},
		{name: "r = 0", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return rs(big.NewInt(0), s, size) })},
		{name: "s = 0", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return rs(r, big.NewInt(0), size) })},
		{name: "r = s = 0", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return make([]byte, 2*size) })},
		{name: "r = N", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return rs(n, s, size) })},
		{name: "s = N", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return rs(r, n, size) })},
		{name: "r||s all ones (r, s > N)", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte {
			return []byte(strings.Repeat("\xff", 2*size))
		})},
		{name: "DER with r + N (same residue)", want: ErrSignature, doc: enc(func(r, s *big.Int, _ int) []byte { return der(new(big.Int).Add(r, n), s) })},
		{name: "DER with s + N", want: ErrSignature, doc: enc(func(r, s *big.Int, _ int) []byte { return der(r, new(big.Int).Add(s, n)) })},
		{name: "DER with negative r", want: ErrSignature, doc: enc(func(r, s *big.Int, _ int) []byte {
			b := der(r, s)
			b[4] |= 0x80 // first content byte of r: sign bit
			return b
		})},
		{name: "DER with trailing garbage", want: ErrSignature, doc: enc(func(r, s *big.Int, _ int) []byte { return append(der(r, s), 0) })},
		{name: "r||s one byte short", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return rs(r, s, size)[1:] })},
		{name: "r||s one byte long (leading zero)", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return append([]byte{0}, rs(r, s, size)...) })},
		{name: "r||s one byte long (trailing zero)", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return append(rs(r, s, size), 0) })},
		{name: "r||s with halves swapped", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return rs(s, r, size) })},
		{name: "empty SignatureValue", want: ErrSignature, doc: enc(func(r, s *big.Int, size int) []byte { return nil })},
		{name: "signed by another P-256 key", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{key: other})
			return d.bytes()
		}},
		{name: "signed by a P-384 key with its certificate nowhere", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{key: p384})
			return d.bytes()
		}},
		{name: "RSA-SHA256 method over an ECDSA signature", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{key: key, methodURI: rvRSA256})
			return d.bytes()
		}},
		{name: "HMAC keyed with the EC certificate", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			c := f.c.(*Connector)
			idp, err := c.idp(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			rvSign(t, f.idp, d.ass, rvSig{key: idp.Certs[0].Raw})
			return d.bytes()
		}},
	}
	rvRun(t, f, cases)
}

// TestReviewNamespaces: prefix and namespace games. The verifier keys
// everything on namespace URIs, and canonical forms carry prefixes, so a
// rebinding either changes the digest or changes nothing the reader uses.
func TestReviewNamespaces(t *testing.T) {
	f := newFixture(t, nil)
	signedA := func(t *testing.T) []byte { return rvSigned(t, f, f.opts(), &rvSig{}, nil).bytes() }
	signedR := func(t *testing.T) []byte { return rvSigned(t, f, f.opts(), nil, &rvSig{}).bytes() }
	assertionNS := `<saml:Assertion xmlns:saml="` + nsAssertion + `"`
	cases := []rvCase{
		{name: "saml prefix redeclared to another namespace on the Subject", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), "<saml:Subject>", `<saml:Subject xmlns:saml="urn:evil">`)
		}},
		{name: "saml prefix redeclared on the signed assertion itself", want: nil, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, `<saml:Assertion xmlns:saml="urn:evil"`)
		}},
		{name: "assertion re-serialized with the default namespace (no prefix)", want: ErrSignature, doc: func(t *testing.T) []byte {
			s := string(signedA(t))
			i := strings.Index(s, "<saml:Assertion")
			j := strings.Index(s, "</saml:Assertion>") + len("</saml:Assertion>")
			a := strings.ReplaceAll(strings.ReplaceAll(s[i:j], "<saml:", "<"), "</saml:", "</")
			a = strings.Replace(a, `xmlns:saml="`+nsAssertion+`"`, `xmlns="`+nsAssertion+`"`, 1)
			return []byte(s[:i] + a + s[j:])
		}},
		{name: "the assertion's xmlns:saml moved up to the Response (equivalent: valid)", verdict: rvAccept, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, `<saml:Assertion`)
		}},
		{name: "saml rebound on the unsigned Response (its Issuer leaves the SAML namespace)", verdict: rvSafe, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), `<samlp:Response xmlns:saml="`+nsAssertion+`"`, `<samlp:Response xmlns:saml="urn:evil"`)
		}},
		{name: "Response root in another namespace, right local name", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), `xmlns:samlp="`+nsProtocol+`"`, `xmlns:samlp="urn:evil"`)
		}},
		{name: "Response root in the SAML 1.1 protocol namespace", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), `xmlns:samlp="`+nsProtocol+`"`, `xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol"`)
		}},
		{name: "signed Response: samlp rebound (digest covers the root's namespace)", want: nil, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedR(t), `xmlns:samlp="`+nsProtocol+`"`, `xmlns:samlp="urn:evil"`)
		}},
		{name: "Status in another namespace with Success (unsigned Response): no status, refused", want: ErrStatus, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), `<samlp:Status>`, `<samlp:Status xmlns:samlp="urn:evil">`)
		}},
		{name: "ds prefix bound to another namespace inside SignedInfo", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), `<ds:SignedInfo>`, `<ds:SignedInfo xmlns:ds="urn:evil">`)
		}},
		{name: "Reference element in another namespace", want: ErrSignature, doc: func(t *testing.T) []byte {
			s := string(signedA(t))
			s = strings.Replace(s, "<ds:Reference ", `<x:Reference xmlns:x="urn:x" `, 1)
			return []byte(strings.Replace(s, "</ds:Reference>", "</x:Reference>", 1))
		}},
		{name: "NameID in another namespace added to the Subject", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), "<saml:Subject>", `<saml:Subject><x:NameID xmlns:x="urn:x">`+rvEvil+`</x:NameID>`)
		}},
		{name: "ID attribute moved into a namespace (saml:ID)", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS+` ID=`, assertionNS+` saml:ID=`)
		}},
		{name: "unused namespace declarations added to the signed assertion (exclusive c14n drops them: valid)", verdict: rvAccept, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` xmlns:evil="urn:evil" xmlns:x="urn:x"`)
		}},
		{name: "xs prefix (used only inside xsi:type values) rebound: type is not used", verdict: rvAccept, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), `xmlns:xs="http://www.w3.org/2001/XMLSchema"`, `xmlns:xs="urn:evil"`)
		}},
		{name: "xmlns:xml rebound (reserved)", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` xmlns:xml="urn:evil"`)
		}},
		{name: "xmlns prefix declared (reserved)", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` xmlns:xmlns="urn:evil"`)
		}},
		{name: "undeclaring a prefix (xmlns:saml=\"\", XML 1.1 only)", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), "<saml:Subject>", `<saml:Subject xmlns:saml="">`)
		}},
		{name: "default namespace declared twice on one element", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` xmlns="urn:a" xmlns="urn:b"`)
		}},
		{name: "the same prefix declared twice on one element", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` xmlns:saml="urn:evil"`)
		}},
		{name: "ID given twice by two prefixes of one namespace", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` xmlns:a="urn:a" xmlns:b="urn:a" a:ID="1" b:ID="2"`)
		}},
		// Go encoding/xml round-trip bugs behind crewjam/saml's
		// CVE-2020-27846: GO-2020-0046 (CVE-2020-29509/29510/29511).
		{name: "attribute named :ID (empty prefix)", want: ErrRoundTrip, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` :ID="_evil"`)
		}},
		{name: "element named a:b:c", want: ErrRoundTrip, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), "<samlp:Status>", `<a:b:c xmlns:a="urn:a"/><samlp:Status>`)
		}},
		{name: "xmlns: with an empty local part", want: ErrRoundTrip, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), assertionNS, assertionNS+` xmlns:="urn:evil"`)
		}},
		{name: "element named :Assertion", want: ErrRoundTrip, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), "<samlp:Status>", `<:Assertion/><samlp:Status>`)
		}},
		{name: "non-ASCII element name", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signedA(t), "<samlp:Status>", `<saml:Аssertion/><samlp:Status>`)
		}},
		{name: "end tag with another prefix bound to the same namespace", want: ErrMalformed, doc: func(t *testing.T) []byte {
			s := rvReplace(t, signedA(t), "<samlp:Status>", `<samlp:Status xmlns:p2="`+nsProtocol+`">`)
			return rvReplace(t, s, "</samlp:Status>", "</p2:Status>")
		}},
	}
	rvRun(t, f, cases)
}

// TestReviewTextInjection: comments, processing instructions, CDATA,
// references, white space and Unicode in the values the identity is read
// from (CVE-2017-11427/11428/11429/11430, CVE-2018-0489, CVE-2018-5387,
// CVE-2018-7340: comment-truncated NameIDs in python-saml, ruby-saml,
// OmniAuth, Shibboleth, Duo, SAML2 .NET, Okta's).
func TestReviewTextInjection(t *testing.T) {
	f := newFixture(t, nil)
	signed := func(t *testing.T, nameID string, email string) []byte {
		o := f.opts()
		if nameID != "" {
			o.NameID = nameID
		}
		if email != "" {
			o.Attributes["email"] = []string{email}
		}
		return rvSigned(t, f, o, &rvSig{}, &rvSig{}).bytes()
	}
	const nameID = `>00u1ana</saml:NameID>`
	cases := []rvCase{
		{name: "comment in the NameID (00u1<!---->ana)", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>00u1<!---->ana</saml:NameID>`)
		}},
		{name: "comment truncating an email NameID (user@evil.com<!---->.acme.com)", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "user@evil.com.acme.com", ""), `>user@evil.com.acme.com<`, `>user@evil.com<!---->.acme.com<`)
		}},
		{name: "comment in the email attribute value", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", "ana@evil.com.acme.com"), `>ana@evil.com.acme.com<`, `>ana@evil.com<!--x-->.acme.com<`)
		}},
		{name: "comment in the Audience", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), `</saml:Audience>`, `<!---->x</saml:Audience>`)
		}},
		{name: "processing instruction in the NameID", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>00u1<?x y?>ana</saml:NameID>`)
		}},
		{name: "comment before the root", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append([]byte("<!-- hi -->"), signed(t, "", "")...)
		}},
		{name: "comment after the root", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append(signed(t, "", ""), []byte("<!-- hi -->")...)
		}},
		{name: "processing instruction before the root (xml-stylesheet)", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append([]byte(`<?xml-stylesheet href="https://evil/x.xsl"?>`), signed(t, "", "")...)
		}},
		{name: "NameID text split: text then CDATA", want: ErrRoundTrip, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>00u1<![CDATA[ana]]></saml:NameID>`)
		}},
		{name: "NameID split into two CDATA sections", want: ErrRoundTrip, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `><![CDATA[00u1]]><![CDATA[ana]]></saml:NameID>`)
		}},
		{name: "NameID as one CDATA section (the same text: valid)", verdict: rvAccept, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `><![CDATA[00u1ana]]></saml:NameID>`)
		}},
		{name: "NameID with character references (&#x30;0u1&#97;na: the same text, valid)", verdict: rvAccept, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>&#x30;0u1&#97;na</saml:NameID>`)
		}},
		{name: "NameID with a character reference to another letter", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>00u1&#x62;na</saml:NameID>`)
		}},
		{name: "undeclared entity reference in the NameID", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>00u1&evil;</saml:NameID>`)
		}},
		{name: "character reference to NUL", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>00u1ana&#0;</saml:NameID>`)
		}},
		{name: "character reference overflowing 32 bits", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, `>00u1ana&#x100000041;</saml:NameID>`)
		}},
		{name: "literal NUL byte in the NameID", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, ">00u1ana\x00</saml:NameID>")
		}},
		{name: "U+FFFE in the NameID", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, ">00u1ana\uFFFE</saml:NameID>")
		}},
		{name: "invalid UTF-8 (overlong '<')", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, ">00u1ana\xc0\xbc</saml:NameID>")
		}},
		{name: "white space around the NameID", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, "> 00u1ana\n</saml:NameID>")
		}},
		{name: "CR LF line end inside a signed value (normalized to LF: digest differs)", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, ">00u1\r\nana</saml:NameID>")
		}},
		{name: "NFD instead of NFC in a signed value", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", "josé@acme.com"), "josé@acme.com", "jose\u0301@acme.com")
		}},
		{name: "homoglyph (Cyrillic а) in the NameID", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), nameID, ">00u1аna</saml:NameID>")
		}},
		{name: "literal tab in the Recipient attribute (attribute normalization differs by parser)", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), `/acs"`, "/acs\t\"")
		}},
		{name: "&#x9; in the Recipient attribute", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), `/acs"`, `/acs&#x9;"`)
		}},
		{name: "&quot; breaking out of an attribute value", want: ErrSignature, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), `/acs"`, `/acs&quot; Recipient=&quot;x"`)
		}},
		{name: "attributes without separating white space", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return rvReplace(t, signed(t, "", ""), `" IssueInstant=`, `"IssueInstant=`)
		}},
		{name: "XML declaration encoding=UTF-16", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append([]byte(`<?xml version="1.0" encoding="UTF-16"?>`), signed(t, "", "")...)
		}},
		{name: "XML declaration encoding=ISO-8859-1", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`), signed(t, "", "")...)
		}},
		{name: "XML declaration encoding=UTF-7", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append([]byte(`<?xml version="1.0" encoding="UTF-7"?>`), signed(t, "", "")...)
		}},
		{name: "XML 1.1 declaration", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append([]byte(`<?xml version="1.1"?>`), signed(t, "", "")...)
		}},
		{name: "XML declaration not at the start", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append([]byte(` <?xml version="1.0"?>`), signed(t, "", "")...)
		}},
		{name: "UTF-8 XML declaration (valid)", verdict: rvAccept, doc: func(t *testing.T) []byte {
			return append([]byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"), signed(t, "", "")...)
		}},
		{name: "a second root element after the Response", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append(signed(t, "", ""), []byte(`<samlp:Response xmlns:samlp="`+nsProtocol+`"/>`)...)
		}},
		{name: "text after the root", want: ErrMalformed, doc: func(t *testing.T) []byte {
			return append(signed(t, "", ""), []byte(`x`)...)
		}},
		{name: "unterminated document", want: ErrMalformed, doc: func(t *testing.T) []byte {
			b := signed(t, "", "")
			return b[:len(b)-3]
		}},
	}
	rvRun(t, f, cases)
}

// TestReviewDTDAndCost: DTDs (entity expansion, XXE, ATTLIST-declared IDs:
// ruby-saml CVE-2025-25291/25292 used a DOCTYPE to make REXML and
// Nokogiri see different documents) and the parser's cost bounds. Each
// refusal must be quick; the worst documents the parser accepts must be
// verified (and refused) in bounded time.
func TestReviewDTDAndCost(t *testing.T) {
	f := newFixture(t, nil)
	signed := func(t *testing.T) string { return string(rvSigned(t, f, f.opts(), &rvSig{}, nil).bytes()) }
	withDTD := func(dtd string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return []byte(`<?xml version="1.0"?>` + dtd + signed(t)) }
	}
	inExtensions := func(content string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return rvReplace(t, []byte(signed(t)), "<samlp:Status>", "<samlp:Extensions>"+content+"</samlp:Extensions><samlp:Status>")
		}
	}
	laughs := `<!DOCTYPE samlp:Response [<!ENTITY l0 "ha">`
	for i := 1; i <= 10; i++ {
		laughs += fmt.Sprintf(`<!ENTITY l%d "&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;">`, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	laughs += `]>`
	nest := func(n int) string { return strings.Repeat(`<x:a xmlns:x="urn:x">`, n) + strings.Repeat(`</x:a>`, n) }
	manyAttrs := func(n int) string {
		var b strings.Builder
		b.WriteString(`<x:a xmlns:x="urn:x"`)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, ` a%d="v"`, i)
		}
		b.WriteString(`/>`)
		return b.String()
	}
	manyNS := func(n int) string {
		var b strings.Builder
		b.WriteString(`<x:a xmlns:x="urn:x"`)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, ` xmlns:p%d="urn:p%d"`, i, i)
		}
		b.WriteString(`/>`)
		return b.String()
	}
	cases := []rvCase{
		{name: "DOCTYPE without subset", want: ErrDoctype, doc: withDTD(`<!DOCTYPE samlp:Response>`)},
		{name: "internal ENTITY used in the NameID", want: ErrDoctype, doc: func(t *testing.T) []byte {
			return rvReplace(t, []byte(`<!DOCTYPE samlp:Response [<!ENTITY e "00u1ana">]>`+signed(t)), ">00u1ana<", ">&e;<")
		}},
		{name: "billion laughs", want: ErrDoctype, doc: withDTD(laughs)},
		{name: "XXE: external SYSTEM entity (file:///etc/passwd)", want: ErrDoctype, doc: withDTD(`<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>`)},
		{name: "XXE: external DTD (SSRF)", want: ErrDoctype, doc: withDTD(`<!DOCTYPE r SYSTEM "http://169.254.169.254/latest/meta-data/">`)},
		{name: "parameter entity", want: ErrDoctype, doc: withDTD(`<!DOCTYPE r [<!ENTITY % p SYSTEM "http://evil/p.dtd"> %p;]>`)},
		{name: "ATTLIST declaring another ID attribute (ruby-saml CVE-2025-25291)", want: ErrDoctype, doc: withDTD(`<!DOCTYPE samlp:Response [<!ATTLIST saml:Assertion Id ID #IMPLIED>]>`)},
		{name: "ATTLIST with a default attribute value (parser differential)", want: ErrDoctype, doc: withDTD(`<!DOCTYPE samlp:Response [<!ATTLIST saml:SubjectConfirmationData Recipient CDATA "https://evil">]>`)},
		{name: "DOCTYPE inside the document (in Extensions)", want: ErrDoctype, doc: inExtensions(`<!DOCTYPE x>`)},
		{name: "ENTITY declaration in content", want: ErrDoctype, doc: inExtensions(`<!ENTITY x "y">`)},
		{name: "nesting 33 deep (limit 32)", want: ErrMalformed, doc: inExtensions(nest(33))},
		{name: "nesting 10,000 deep", want: ErrMalformed, doc: inExtensions(nest(10000))},
		{name: "nesting within the limit in the unsigned Response's Extensions (valid)", verdict: rvAccept, doc: inExtensions(nest(25))},
		{name: "65 attributes on one element (limit 64)", want: ErrMalformed, doc: inExtensions(manyAttrs(65))},
		{name: "65 namespace declarations in scope (limit 64)", want: ErrMalformed, doc: inExtensions(manyNS(65))},
		{name: "20,001 elements", want: ErrMalformed, doc: inExtensions(strings.Repeat(`<x:a xmlns:x="urn:x"/>`, 20001))},
		{name: "unterminated CDATA", want: ErrMalformed, doc: inExtensions(`<![CDATA[x`)},
		{name: "one byte over MaxResponseBytes", want: ErrTooLarge, doc: func(t *testing.T) []byte {
			s := signed(t)
			pad := MaxResponseBytes + 1 - len(s)
			return []byte(strings.Replace(s, "<samlp:Status>", strings.Repeat(" ", pad)+"<samlp:Status>", 1))
		}},
	}
	rvRun(t, f, cases)

	// The costliest documents under the limits: every refusal and every
	// verification stays well under a second (measured: a few ms to tens
	// of ms; the bound is loose for a shared 2-core machine).
	const bound = 2 * time.Second
	costly := map[string]func(t *testing.T) []byte{
		"a 1 MiB attribute value": func(t *testing.T) []byte {
			s := signed(t)
			pad := MaxResponseBytes - len(s) - 40
			return rvReplace(t, []byte(s), "<samlp:Status>", `<x:a xmlns:x="urn:x" v="`+strings.Repeat("&amp;", pad/5)+`"/><samlp:Status>`)
		},
		"max elements at depth 31 with 60 namespaces in scope, Response 'signed' (digest over all of it first)": func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			rvSign(t, f.idp, d.ass, rvSig{})
			rvSign(t, f.idp, d.resp, rvSig{prefixList: rvStr("p1 p2 p3 p4 p5 p6 p7 p8 p9 p10 p11 p12 p13 p14 p15 p16")})
			var b strings.Builder
			b.WriteString(`<samlp:Extensions`)
			for i := 0; i < 56; i++ {
				fmt.Fprintf(&b, ` xmlns:p%d="urn:p%d"`, i, i)
			}
			b.WriteString(`>`)
			b.WriteString(strings.Repeat(`<p1:a>`, 28))
			inner := strings.Repeat(`<p2:b p3:c="1" p4:d="2"/>`, 19000-200)
			b.WriteString(inner)
			b.WriteString(strings.Repeat(`</p1:a>`, 28))
			b.WriteString(`</samlp:Extensions>`)
			s := d.bytes()
			return rvReplace(t, s, "<samlp:Status>", b.String()+"<samlp:Status>")
		},
		"many elements each redeclaring namespaces": func(t *testing.T) []byte {
			one := `<x:a xmlns:x="urn:x" xmlns:y="urn:y" xmlns:z="urn:z" y:q="1" z:r="2"/>`
			s := signed(t)
			n := (MaxResponseBytes - len(s) - 64) / len(one)
			if n > 19000 {
				n = 19000
			}
			return rvReplace(t, []byte(s), "<samlp:Status>", "<samlp:Extensions>"+strings.Repeat(one, n)+"</samlp:Extensions><samlp:Status>")
		},
		"64 attributes (63 and a namespace declaration) on each of thousands of elements": func(t *testing.T) []byte {
			one := manyAttrs(63)
			s := signed(t)
			n := (MaxResponseBytes - len(s) - 64) / len(one)
			return rvReplace(t, []byte(s), "<samlp:Status>", "<samlp:Extensions>"+strings.Repeat(one, n)+"</samlp:Extensions><samlp:Status>")
		},
	}
	for name, build := range costly {
		t.Run("cost: "+name, func(t *testing.T) {
			doc := build(t)
			if len(doc) > MaxResponseBytes {
				t.Fatalf("%d bytes", len(doc))
			}
			start := time.Now()
			id, err := f.finish(doc)
			el := time.Since(start)
			t.Logf("%d bytes: %v in %v", len(doc), err, el)
			if id != nil && id.Subject != rvSubject {
				t.Fatalf("identity %+v", id)
			}
			if el > bound {
				t.Fatalf("took %v", el)
			}
		})
	}
}

// rvEncrypt wraps plain (any bytes) in saml:EncryptedAssertion for the
// SP's encryption certificate, as an attacker can: the certificate is
// public in our metadata. RSA-OAEP key transport, cipher (AES-256-GCM if
// nil).
func rvEncrypt(t testing.TB, f *fixture, plain []byte, cipher xmlenc.BlockCipher) *etree.Element {
	t.Helper()
	return rvEncryptWith(t, f, xmlenc.OAEP(), plain, cipher)
}

// rvEncryptWith is rvEncrypt with the key transport enc.
func rvEncryptWith(t testing.TB, f *fixture, enc xmlenc.RSA, plain []byte, cipher xmlenc.BlockCipher) *etree.Element {
	t.Helper()
	if cipher == nil {
		cipher = xmlenc.AES256GCM
	}
	enc.BlockCipher = cipher
	data, err := enc.Encrypt(f.c.(*Connector).encryption[0].cert, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ea := etree.NewElement("saml:EncryptedAssertion")
	ea.CreateAttr("xmlns:saml", nsAssertion)
	ea.AddChild(data)
	return ea
}

// rvSerialize serializes el on its own (its namespace declarations are on
// it: samltest's assertions declare xmlns:saml themselves).
func rvSerialize(t testing.TB, el *etree.Element) string {
	t.Helper()
	d := etree.NewDocument()
	d.SetRoot(el.Copy())
	s, err := d.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReviewEncryptedAssertion: EncryptedAssertion wrapping more or other
// than one signed assertion. An attacker can encrypt anything to our
// public encryption certificate, so the plaintext is as untrusted as the
// unsigned Response around it.
func TestReviewEncryptedAssertion(t *testing.T) {
	f := newFixture(t, nil)
	// signedAssertion returns a response for o whose assertion is signed,
	// and that assertion's serialization.
	signedAssertion := func(t *testing.T) (*rvDoc, string) {
		d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
		return d, rvSerialize(t, d.ass)
	}
	replace := func(d *rvDoc, with *etree.Element) []byte {
		d.resp.InsertChildAt(d.ass.Index(), with)
		d.resp.RemoveChild(d.ass)
		return d.bytes()
	}
	cases := []rvCase{
		{name: "control: IdP-signed assertion, encrypted, unsigned Response", verdict: rvAccept, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(a), nil))
		}},
		{name: "control: AES-128-CBC", verdict: rvAccept, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(a), xmlenc.AES128CBC))
		}},
		{name: "control: unsigned assertion encrypted inside an IdP-signed Response", verdict: rvAccept, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.resp.InsertChildAt(d.ass.Index(), rvEncrypt(t, f, []byte(rvSerialize(t, d.ass)), nil))
			d.resp.RemoveChild(d.ass)
			rvSign(t, f.idp, d.resp, rvSig{})
			return d.bytes()
		}},
		{name: "plaintext: an evil unsigned assertion", want: ErrSignature, doc: func(t *testing.T) []byte {
			d, _ := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, rvEvilAssertion(d.ass))), nil))
		}},
		{name: "plaintext: the signed assertion with its NameID changed", want: ErrSignature, doc: func(t *testing.T) []byte {
			d, _ := signedAssertion(t)
			a := d.ass.Copy()
			rvSetEvil(a)
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, a)), nil))
		}},
		{name: "plaintext: an evil assertion holding the signed one in its Advice", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d, _ := signedAssertion(t)
			e := rvEvilAssertion(d.ass)
			e.CreateElement("saml:Advice").AddChild(d.ass.Copy())
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, e)), nil))
		}},
		{name: "plaintext: the signed assertion, then an evil one (two roots)", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(a+rvSerialize(t, rvEvilAssertion(d.ass))), nil))
		}},
		{name: "plaintext: an evil assertion, then the signed one (two roots)", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, rvEvilAssertion(d.ass))+a), nil))
		}},
		{name: "plaintext: the signed assertion with an evil one in its Signature's ds:Object", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d, _ := signedAssertion(t)
			a := d.ass.Copy()
			rvChild(a, "Signature").CreateElement("ds:Object").AddChild(rvEvilAssertion(d.ass))
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, a)), nil))
		}},
		{name: "plaintext: a samlp:Response wrapping the signed assertion", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(`<samlp:Response xmlns:samlp="`+nsProtocol+`">`+a+`</samlp:Response>`), nil))
		}},
		{name: "plaintext: an EncryptedAssertion (nested encryption)", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			inner := rvEncrypt(t, f, []byte(a), nil)
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, inner)), nil))
		}},
		{name: "plaintext: DOCTYPE before the signed assertion", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(`<!DOCTYPE x [<!ENTITY e "evil">]>`+a), nil))
		}},
		{name: "plaintext: comment injected into the signed NameID", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte(strings.Replace(a, ">00u1ana<", ">00u1<!---->ana<", 1)), nil))
		}},
		{name: "plaintext: not XML", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, _ := signedAssertion(t)
			return replace(d, rvEncrypt(t, f, []byte("hello"), nil))
		}},
		{name: "EncryptedAssertion plus the plain signed assertion", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			d.resp.AddChild(rvEncrypt(t, f, []byte(a), nil))
			return d.bytes()
		}},
		{name: "two EncryptedAssertions", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			d.resp.AddChild(rvEncrypt(t, f, []byte(a), nil))
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, rvEvilAssertion(d.ass))), nil))
		}},
		{name: "EncryptedAssertion hidden in Extensions beside the plain signed one", want: ErrAssertionCount, doc: func(t *testing.T) []byte {
			d, _ := signedAssertion(t)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(rvEncrypt(t, f, []byte(rvSerialize(t, rvEvilAssertion(d.ass))), nil))
			d.resp.InsertChildAt(1, ext)
			return d.bytes()
		}},
		{name: "signed Response: its EncryptedAssertion swapped for the attacker's", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			evil := rvEvilAssertion(d.ass)
			d.resp.InsertChildAt(d.ass.Index(), rvEncrypt(t, f, []byte(rvSerialize(t, d.ass)), nil))
			d.resp.RemoveChild(d.ass)
			rvSign(t, f.idp, d.resp, rvSig{})
			ea := rvChild(d.resp, "EncryptedAssertion")
			d.resp.InsertChildAt(ea.Index(), rvEncrypt(t, f, []byte(rvSerialize(t, evil)), nil))
			d.resp.RemoveChild(ea)
			return d.bytes()
		}},
		{name: "signed assertion for another SP (audience), re-encrypted to us", want: ErrAudience, doc: func(t *testing.T) []byte {
			o := f.opts()
			o.Audience = "https://other-sp.example.com/metadata"
			d := rvSigned(t, f, o, &rvSig{}, nil)
			return replace(d, rvEncrypt(t, f, []byte(rvSerialize(t, d.ass)), nil))
		}},
		{name: "RSA PKCS#1 v1.5 key transport (Bleichenbacher oracle; the IdP-signed assertion inside)", want: ErrDecrypt, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			return replace(d, rvEncryptWith(t, f, xmlenc.PKCS1v15(), []byte(a), xmlenc.AES128CBC))
		}},
		{name: "ten junk EncryptedKeys before the real one (bounded work)", verdict: rvSafe, doc: func(t *testing.T) []byte {
			d, a := signedAssertion(t)
			ea := rvEncrypt(t, f, []byte(a), nil)
			ki := rvFind(ea, "EncryptedKey")
			if len(ki) == 0 {
				t.Fatal("no EncryptedKey")
			}
			for i := 0; i < 10; i++ {
				junk := ki[0].Copy()
				for _, cv := range rvFind(junk, "CipherValue") {
					cv.SetText(base64.StdEncoding.EncodeToString(make([]byte, 256)))
				}
				ki[0].Parent().InsertChildAt(ki[0].Index(), junk)
			}
			return replace(d, ea)
		}},
	}
	rvRun(t, f, cases)

	// XML Encryption padding/format oracles (Jager and Somorovsky 2011):
	// a ciphertext that does not decrypt, one that decrypts to junk, and
	// one that decrypts to a well-formed unsigned assertion must look the
	// same from outside.
	t.Run("no decryption oracle in the public error", func(t *testing.T) {
		d, _ := signedAssertion(t)
		msgs := map[string]bool{}
		for _, plain := range []string{"\x00\x01junk", rvSerialize(t, rvEvilAssertion(d.ass))} {
			d, _ := signedAssertion(t)
			doc := replace(d, rvEncrypt(t, f, []byte(plain), xmlenc.AES128CBC))
			_, err := f.finish(doc)
			msgs[gatehouse.ErrorMessage(err)+"/"+fmt.Sprint(gatehouse.ErrorCode(err))] = true
		}
		d, a := signedAssertion(t)
		ea := rvEncrypt(t, f, []byte(a), xmlenc.AES128CBC)
		cv := rvFind(rvChild(ea, "EncryptedData"), "CipherValue")
		ct, _ := base64.StdEncoding.DecodeString(cv[len(cv)-1].Text())
		ct[len(ct)-1] ^= 1 // breaks the CBC padding
		cv[len(cv)-1].SetText(base64.StdEncoding.EncodeToString(ct))
		_, err := f.finish(replace(d, ea))
		msgs[gatehouse.ErrorMessage(err)+"/"+fmt.Sprint(gatehouse.ErrorCode(err))] = true
		if len(msgs) != 1 {
			t.Fatalf("public errors differ: %v", msgs)
		}
	})
}

// TestReviewIdentitySource: the identity comes only from the element
// whose signature was verified. Content outside it — in the unsigned
// Response, or inside a ds:Signature (which the enveloped-signature
// transform leaves out of the digest) — must never be read.
func TestReviewIdentitySource(t *testing.T) {
	f := newFixture(t, nil)
	evilSubject := `<saml:Subject xmlns:saml="` + nsAssertion + `"><saml:NameID>` + rvEvil + `</saml:NameID></saml:Subject>`
	evilAttrs := `<saml:AttributeStatement xmlns:saml="` + nsAssertion + `"><saml:Attribute Name="email"><saml:AttributeValue>` + rvEvil +
		`</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups"><saml:AttributeValue>evil-admins</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>`
	evilAuthn := `<saml:AuthnStatement xmlns:saml="` + nsAssertion + `" AuthnInstant="2026-11-30T06:00:00Z" SessionIndex="evil"/>`
	add := func(where func(d *rvDoc) *etree.Element, xml string, signResponse bool) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			if signResponse {
				rvSign(t, f.idp, d.resp, rvSig{})
			}
			where(d).AddChild(rvParse(t, xml))
			return d.bytes()
		}
	}
	resp := func(d *rvDoc) *etree.Element { return d.resp }
	assSigObj := func(d *rvDoc) *etree.Element { return rvChild(d.ass, "Signature").CreateElement("ds:Object") }
	assSig := func(d *rvDoc) *etree.Element { return rvChild(d.ass, "Signature") }
	assKeyInfo := func(d *rvDoc) *etree.Element { return rvChild(d.ass, "Signature").CreateElement("ds:KeyInfo") }
	respSigObj := func(d *rvDoc) *etree.Element { return rvChild(d.resp, "Signature").CreateElement("ds:Object") }
	cases := []rvCase{
		{name: "evil Subject at the (unsigned) Response level", verdict: rvSafe, doc: add(resp, evilSubject, false)},
		{name: "evil AttributeStatement at the Response level", verdict: rvSafe, doc: add(resp, evilAttrs, false)},
		{name: "evil Subject in the assertion signature's ds:Object (outside the digest)", verdict: rvSafe, doc: add(assSigObj, evilSubject, false)},
		{name: "evil AttributeStatement in the assertion signature's ds:Object", verdict: rvSafe, doc: add(assSigObj, evilAttrs, false)},
		{name: "evil AuthnStatement in the assertion signature's ds:Object", verdict: rvSafe, doc: add(assSigObj, evilAuthn, false)},
		{name: "evil Subject directly in the assertion's ds:Signature", verdict: rvSafe, doc: add(assSig, evilSubject, false)},
		{name: "evil AttributeStatement directly in the assertion's ds:Signature", verdict: rvSafe, doc: add(assSig, evilAttrs, false)},
		{name: "evil AttributeStatement in the assertion's ds:KeyInfo", verdict: rvSafe, doc: add(assKeyInfo, evilAttrs, false)},
		{name: "signed Response: evil Subject in its signature's ds:Object", verdict: rvSafe, doc: add(respSigObj, evilSubject, true)},
		{name: "signed Response: evil AttributeStatement in its signature's ds:Object", verdict: rvSafe, doc: add(respSigObj, evilAttrs, true)},
		{name: "evil attributes in an unsigned assertion-like element of another namespace", verdict: rvSafe, doc: add(resp,
			`<x:Assertion xmlns:x="urn:x">`+evilSubject+evilAttrs+`</x:Assertion>`, false)},
		{name: "signed Response over an unsigned assertion: evil Subject added to the assertion", want: ErrSignature, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), nil, &rvSig{})
			d.ass.AddChild(rvParse(t, evilSubject))
			return d.bytes()
		}},
		{name: "Response Issuer of another IdP (assertion's is right)", want: ErrIssuer, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			rvChild(d.resp, "Issuer").SetText("https://evil.example.org/idp")
			return d.bytes()
		}},
	}
	rvRun(t, f, cases)
}

// TestReviewConditions: the checks on the verified assertion still apply
// (saml-profiles §4.1.4.2-3, saml-core §2.5): audience, recipient,
// destination, InResponseTo, time windows, bearer confirmation, issuer;
// replay and cross-connection use.
func TestReviewConditions(t *testing.T) {
	f := newFixture(t, nil)
	signedWith := func(mod func(o *samltest.Options, a *etree.Element), signResponse bool) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			o := f.opts()
			if mod != nil {
				mod(&o, nil)
			}
			d := rvUnsigned(f, o, func(a *etree.Element) {
				if mod != nil {
					mod(&o, a)
				}
			})
			rvSign(t, f.idp, d.ass, rvSig{})
			if signResponse {
				rvSign(t, f.idp, d.resp, rvSig{})
			}
			return d.bytes()
		}
	}
	// onA runs fn on the assertion element only.
	onA := func(fn func(a *etree.Element)) func(o *samltest.Options, a *etree.Element) {
		return func(_ *samltest.Options, a *etree.Element) {
			if a != nil {
				fn(a)
			}
		}
	}
	audience := func(vals ...string) func(a *etree.Element) {
		return func(a *etree.Element) {
			ar := rvFind(a, "AudienceRestriction")[0]
			for _, au := range rvFind(ar, "Audience") {
				ar.RemoveChild(au)
			}
			for _, v := range vals {
				ar.CreateElement("saml:Audience").SetText(v)
			}
		}
	}
	setAttr := func(tag, name, value string) func(a *etree.Element) {
		return func(a *etree.Element) {
			el := rvFind(a, tag)[0]
			if value == "\x00" {
				el.RemoveAttr(name)
			} else {
				el.CreateAttr(name, value)
			}
		}
	}
	ours, acs := f.entityID(), f.acs()
	now := f.clock.Now()
	ts := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	cases := []rvCase{
		{name: "control: our audience among others in one restriction", verdict: rvAccept, doc: signedWith(onA(audience("https://other.example.com", ours)), false)},
		{name: "a second AudienceRestriction naming another SP", want: ErrAudience, doc: signedWith(onA(func(a *etree.Element) {
			c := rvFind(a, "Conditions")[0]
			c.CreateElement("saml:AudienceRestriction").CreateElement("saml:Audience").SetText("https://other.example.com")
		}), false)},
		{name: "no AudienceRestriction", want: ErrAudience, doc: signedWith(onA(func(a *etree.Element) {
			c := rvFind(a, "Conditions")[0]
			c.RemoveChild(rvFind(c, "AudienceRestriction")[0])
		}), false)},
		{name: "empty AudienceRestriction", want: ErrAudience, doc: signedWith(onA(audience()), false)},
		{name: "audience: ours with a suffix", want: ErrAudience, doc: signedWith(onA(audience(ours+"x")), false)},
		{name: "audience: ours, one character short", want: ErrAudience, doc: signedWith(onA(audience(ours[:len(ours)-1])), false)},
		{name: "audience: ours with a trailing slash", want: ErrAudience, doc: signedWith(onA(audience(ours+"/")), false)},
		{name: "audience: ours upper-cased", want: ErrAudience, doc: signedWith(onA(audience(strings.ToUpper(ours))), false)},
		{name: "audience: ours padded with spaces", want: ErrAudience, doc: signedWith(onA(audience(" "+ours+" ")), false)},
		{name: "audience: the IdP's own entity ID", want: ErrAudience, doc: signedWith(onA(audience(f.idp.EntityID)), false)},
		{name: "Recipient with a trailing slash", want: ErrDestination, doc: signedWith(onA(setAttr("SubjectConfirmationData", "Recipient", acs+"/")), false)},
		{name: "Recipient with a query string", want: ErrDestination, doc: signedWith(onA(setAttr("SubjectConfirmationData", "Recipient", acs+"?x=1")), false)},
		{name: "Recipient over http", want: ErrDestination, doc: signedWith(onA(setAttr("SubjectConfirmationData", "Recipient", strings.Replace(acs, "https:", "http:", 1))), false)},
		{name: "Recipient of another connection", want: ErrDestination, doc: signedWith(onA(setAttr("SubjectConfirmationData", "Recipient", strings.Replace(acs, "con_test1", "con_test2", 1))), false)},
		{name: "no Recipient", want: ErrDestination, doc: signedWith(onA(setAttr("SubjectConfirmationData", "Recipient", "\x00")), false)},
		{name: "holder-of-key confirmation only", want: ErrDestination, doc: signedWith(onA(setAttr("SubjectConfirmation", "Method", "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key")), false)},
		{name: "sender-vouches confirmation only", want: ErrDestination, doc: signedWith(onA(setAttr("SubjectConfirmation", "Method", "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches")), false)},
		{name: "no SubjectConfirmation", want: ErrDestination, doc: signedWith(onA(func(a *etree.Element) {
			s := rvFind(a, "Subject")[0]
			s.RemoveChild(rvFind(s, "SubjectConfirmation")[0])
		}), false)},
		{name: "SubjectConfirmationData without NotOnOrAfter", want: ErrExpired, doc: signedWith(onA(setAttr("SubjectConfirmationData", "NotOnOrAfter", "\x00")), false)},
		{name: "SubjectConfirmationData without InResponseTo", want: ErrInResponseTo, doc: signedWith(onA(setAttr("SubjectConfirmationData", "InResponseTo", "\x00")), false)},
		{name: "SubjectConfirmationData InResponseTo of another request", want: ErrInResponseTo, doc: signedWith(onA(setAttr("SubjectConfirmationData", "InResponseTo", "id-other")), false)},
		{name: "SubjectConfirmationData NotBefore in the future", want: ErrNotYetValid, doc: signedWith(onA(setAttr("SubjectConfirmationData", "NotBefore", ts(10*time.Minute))), false)},
		{name: "SubjectConfirmationData NotOnOrAfter passed", want: ErrExpired, doc: signedWith(onA(setAttr("SubjectConfirmationData", "NotOnOrAfter", ts(-10*time.Minute))), false)},
		{name: "control: a confirmation for another ACS, then one for ours", verdict: rvAccept, doc: signedWith(onA(func(a *etree.Element) {
			s := rvFind(a, "Subject")[0]
			sc := rvFind(s, "SubjectConfirmation")[0]
			other := sc.Copy()
			rvFind(other, "SubjectConfirmationData")[0].CreateAttr("Recipient", "https://other.example.com/acs")
			s.InsertChildAt(sc.Index(), other)
		}), false)},
		{name: "our confirmation expired, a valid one for another ACS", want: ErrExpired, doc: signedWith(onA(func(a *etree.Element) {
			s := rvFind(a, "Subject")[0]
			sc := rvFind(s, "SubjectConfirmation")[0]
			other := sc.Copy()
			rvFind(other, "SubjectConfirmationData")[0].CreateAttr("Recipient", "https://other.example.com/acs")
			rvFind(sc, "SubjectConfirmationData")[0].CreateAttr("NotOnOrAfter", ts(-10*time.Minute))
			s.AddChild(other)
		}), false)},
		{name: "no Conditions", want: ErrMalformed, doc: signedWith(onA(func(a *etree.Element) { a.RemoveChild(rvFind(a, "Conditions")[0]) }), false)},
		{name: "Conditions NotBefore in the future", want: ErrNotYetValid, doc: signedWith(onA(setAttr("Conditions", "NotBefore", ts(10*time.Minute))), false)},
		{name: "Conditions NotOnOrAfter passed", want: ErrExpired, doc: signedWith(onA(setAttr("Conditions", "NotOnOrAfter", ts(-10*time.Minute))), false)},
		{name: "assertion IssueInstant an hour old", want: ErrExpired, doc: signedWith(onA(func(a *etree.Element) { a.CreateAttr("IssueInstant", ts(-time.Hour)) }), false)},
		{name: "assertion IssueInstant an hour ahead", want: ErrNotYetValid, doc: signedWith(onA(func(a *etree.Element) { a.CreateAttr("IssueInstant", ts(time.Hour)) }), false)},
		{name: "assertion without IssueInstant", want: nil, doc: signedWith(onA(func(a *etree.Element) { a.RemoveAttr("IssueInstant") }), false)},
		{name: "assertion Version 1.1", want: ErrMalformed, doc: signedWith(onA(func(a *etree.Element) { a.CreateAttr("Version", "1.1") }), false)},
		{name: "no AuthnStatement", want: ErrMalformed, doc: signedWith(onA(func(a *etree.Element) { a.RemoveChild(rvFind(a, "AuthnStatement")[0]) }), false)},
		{name: "assertion Issuer of another IdP", want: ErrIssuer, doc: signedWith(onA(func(a *etree.Element) { rvChild(a, "Issuer").SetText("https://evil.example.org/idp") }), false)},
		{name: "assertion Issuer with a trailing slash", want: ErrIssuer, doc: signedWith(onA(func(a *etree.Element) { rvChild(a, "Issuer").SetText(f.idp.EntityID + "/") }), false)},
		{name: "no Subject NameID", want: ErrSubject, doc: signedWith(onA(func(a *etree.Element) {
			s := rvFind(a, "Subject")[0]
			s.RemoveChild(rvFind(s, "NameID")[0])
		}), false)},
		{name: "two NameIDs in the Subject", want: ErrMalformed, doc: signedWith(onA(func(a *etree.Element) {
			s := rvFind(a, "Subject")[0]
			s.InsertChildAt(0, rvFind(s, "NameID")[0].Copy())
		}), false)},
		{name: "two Subjects", want: ErrMalformed, doc: signedWith(onA(func(a *etree.Element) {
			s := rvFind(a, "Subject")[0]
			a.InsertChildAt(s.Index(), s.Copy())
		}), false)},
		{name: "NameID only inside the SubjectConfirmation", want: ErrSubject, doc: signedWith(onA(func(a *etree.Element) {
			s := rvFind(a, "Subject")[0]
			n := rvFind(s, "NameID")[0]
			s.RemoveChild(n)
			rvFind(s, "SubjectConfirmation")[0].InsertChildAt(0, n)
		}), false)},
		// The unsigned Response's own fields.
		{name: "unsigned Response: InResponseTo changed", want: ErrInResponseTo, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d.resp.CreateAttr("InResponseTo", "id-other")
			return d.bytes()
		}},
		{name: "unsigned Response: InResponseTo removed", want: ErrInResponseTo, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d.resp.RemoveAttr("InResponseTo")
			return d.bytes()
		}},
		{name: "unsigned Response: Destination of another SP", want: ErrDestination, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d.resp.CreateAttr("Destination", "https://other.example.com/acs")
			return d.bytes()
		}},
		{name: "control: unsigned Response without Destination (the signed Recipient binds it)", verdict: rvAccept, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d.resp.RemoveAttr("Destination")
			return d.bytes()
		}},
		{name: "signed Response without Destination (saml-bindings §3.5.5.2)", want: ErrDestination, doc: func(t *testing.T) []byte {
			d := rvUnsigned(f, f.opts(), nil)
			d.resp.RemoveAttr("Destination")
			rvSign(t, f.idp, d.resp, rvSig{})
			return d.bytes()
		}},
		{name: "unsigned Response: Status Responder", want: ErrStatus, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			rvFind(d.resp, "StatusCode")[0].CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Responder")
			return d.bytes()
		}},
		{name: "unsigned Response: no Status", want: ErrStatus, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d.resp.RemoveChild(rvChild(d.resp, "Status"))
			return d.bytes()
		}},
		{name: "unsigned Response: two Status elements", want: ErrMalformed, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			st := rvChild(d.resp, "Status")
			d.resp.InsertChildAt(st.Index(), st.Copy())
			return d.bytes()
		}},
		{name: "unsigned Response: IssueInstant an hour old", want: ErrExpired, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d.resp.CreateAttr("IssueInstant", ts(-time.Hour))
			return d.bytes()
		}},
		{name: "unsigned Response: Version 1.0", want: ErrMalformed, doc: func(t *testing.T) []byte {
			d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
			d.resp.CreateAttr("Version", "1.0")
			return d.bytes()
		}},
	}
	rvRun(t, f, cases)

	t.Run("replay: the same response twice, and re-wrapped in a new unsigned Response", func(t *testing.T) {
		d := rvSigned(t, f, f.opts(), &rvSig{}, nil)
		doc := d.bytes()
		rvAccepted(t, f, doc, rvSubject)
		rvRefused(t, f, doc, ErrReplayed)
		d.resp.CreateAttr("ID", samltest.ID())
		rvRefused(t, f, d.bytes(), ErrReplayed)
	})
	t.Run("an assertion for one connection used at another of the same IdP", func(t *testing.T) {
		doc := rvSigned(t, f, f.opts(), &rvSig{}, nil).bytes()
		g := newFixture(t, nil)
		g.conn.ID = "con_test2"
		g.configure(map[string]any{"idp_metadata_xml": string(g.idp.Metadata())})
		g.flow.RequestID = f.flow.RequestID // even with the same request ID
		rvRefused(t, g, doc, nil)
	})
	t.Run("an SP-initiated response at an IdP-initiated-only entry", func(t *testing.T) {
		g := newFixture(t, map[string]any{"allow_idp_initiated": true, "idp_initiated_target": "/apps/wiki"})
		doc := rvSigned(t, g, g.opts(), &rvSig{}, nil).bytes()
		id, err := g.c.(interface {
			FinishUnsolicited(context.Context, *http.Request) (*gatehouse.Identity, error)
		}).FinishUnsolicited(context.Background(), post(doc, ""))
		if id != nil || !errors.Is(err, ErrUnsolicited) {
			t.Fatalf("id %v err %v", id, err)
		}
	})
}

// FuzzReviewSignedIdentity: an integrity property of the verifier. The
// seeds are valid responses of several signing shapes, all carrying the
// same identity; the fuzzer edits their bytes anywhere (the signatures
// stay those of the originals), and whatever the verifier accepts must
// yield exactly that identity. An accepted edit that changes any field of
// the identity would be a canonicalization or reading gap (two documents
// with one canonical form read differently), that is, a signature bypass.
//
//	go test ./connector/saml -run '^$' -fuzz FuzzReviewSignedIdentity -fuzzminimizetime 0 -fuzztime 60s
//
// Keys and IDs are generated per run, so a failing input saved under
// testdata/fuzz replays against other signatures; the failure message
// prints the document.
func FuzzReviewSignedIdentity(f *testing.F) {
	fx := newFixture(f, nil)
	c := fx.c.(*Connector)
	o := fx.opts()
	o.Attributes["xsiNil"] = []string{"x"}
	var seeds [][]byte
	for _, shape := range []struct{ a, r *rvSig }{
		{&rvSig{}, nil},
		{nil, &rvSig{}},
		{&rvSig{}, &rvSig{}},
		{&rvSig{prefix: "-", transforms: []string{rvEnveloped, algC14N10}}, nil},
		{nil, &rvSig{transforms: []string{rvEnveloped}, c14n: algC14N10}},
		{&rvSig{prefixList: rvStr("xs xsi samlp")}, nil},
	} {
		seeds = append(seeds, rvSigned(f, fx, o, shape.a, shape.r).bytes())
	}
	// One with the SAML namespace as the default namespace of the
	// assertion, declared on the Response (signed after the rewrite).
	{
		d := rvUnsigned(fx, o, nil)
		s := string(d.bytes())
		i, j := strings.Index(s, "<saml:Assertion"), strings.Index(s, "</saml:Assertion>")+len("</saml:Assertion>")
		a := strings.ReplaceAll(strings.ReplaceAll(s[i:j], "<saml:", "<"), "</saml:", "</")
		a = strings.Replace(a, ` xmlns:saml="`+nsAssertion+`"`, "", 1)
		s = strings.Replace(s[:i]+a+s[j:], "<samlp:Response ", `<samlp:Response xmlns="`+nsAssertion+`" `, 1)
		doc := etree.NewDocument()
		if err := doc.ReadFromString(s); err != nil {
			f.Fatal(err)
		}
		rvSign(f, fx.idp, rvChild(doc.Root(), "Assertion"), rvSig{})
		seeds = append(seeds, samltest.Bytes(doc))
	}
	want, _, err := c.verify(context.Background(), fx.flow, seeds[0], false)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		id, _, err := c.verify(context.Background(), fx.flow, s, false)
		if err != nil || !reflect.DeepEqual(id, want) {
			f.Fatalf("seed: %v %+v\n%s", err, id, s)
		}
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		id, _, err := c.verify(context.Background(), fx.flow, doc, false)
		if err == nil && !reflect.DeepEqual(id, want) {
			t.Fatalf("an edited response was accepted with another identity:\n got %+v\nwant %+v\n%s", id, want, doc)
		}
	})
}

// TestReviewExhaustiveWrapping searches signature wrapping systematically
// instead of by the catalogued variants: in a signed response (assertion
// signed, Response signed, both), every element is moved to the first
// place under every other element, and copied there and to the last place
// with the attacker's identity. Whatever the verifier accepts must carry the signed
// identity, unchanged.
func TestReviewExhaustiveWrapping(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of verifications")
	}
	f := newFixture(t, nil)
	c := f.c.(*Connector)
	for _, shape := range []struct {
		name string
		a, r *rvSig
	}{
		{"assertion signed", &rvSig{}, nil},
		{"response signed", nil, &rvSig{}},
		{"both signed", &rvSig{}, &rvSig{}},
	} {
		t.Run(shape.name, func(t *testing.T) {
			base := rvSigned(t, f, f.opts(), shape.a, shape.r)
			want, _, err := c.verify(context.Background(), f.flow, base.bytes(), false)
			if err != nil {
				t.Fatal(err)
			}
			// elems lists the document's elements in document order.
			elems := func(doc *etree.Document) []*etree.Element { return rvFind(doc.Root(), "") }
			n := len(elems(base.doc))
			tried, accepted := 0, 0
			for src := 1; src < n; src++ { // not the root
				for dst := 0; dst < n; dst++ {
					for _, op := range []string{"move-first", "evil-first", "evil-last"} {
						doc := base.doc.Copy()
						els := elems(doc)
						s, p := els[src], els[dst]
						if p == s || rvWithin(p, s) {
							continue
						}
						switch op {
						case "move-first":
							if s.Parent() == p {
								continue
							}
							s.Parent().RemoveChild(s)
							p.InsertChildAt(0, s)
						default:
							e := s.Copy()
							rvSetEvil(e)
							if e.SelectAttr("ID") != nil {
								e.CreateAttr("ID", samltest.ID())
							}
							if op == "evil-first" {
								p.InsertChildAt(0, e)
							} else {
								p.AddChild(e)
							}
						}
						tried++
						b := samltest.Bytes(doc)
						id, _, err := c.verify(context.Background(), f.flow, b, false)
						if err == nil {
							accepted++
							if !reflect.DeepEqual(id, want) {
								t.Fatalf("%s %s into %s: accepted with %+v\n%s", op, s.Tag, p.Tag, id, b)
							}
						}
					}
				}
			}
			t.Logf("%d elements, %d rearrangements, %d accepted (all with the signed identity)", n, tried, accepted)
		})
	}
}

// rvWithin reports whether el is anc or below it.
func rvWithin(el, anc *etree.Element) bool {
	for ; el != nil; el = el.Parent() {
		if el == anc {
			return true
		}
	}
	return false
}

// TestReviewMetadataCacheFollowsConfig: the fetched-metadata cache must
// not keep trusting the IdP a connection was configured with before. A
// federation aggregate (one metadata URL, many IdPs) is read for the
// configured idp_entity_id; when an admin switches the connection to
// another IdP of the aggregate (say, the first one was compromised), a
// response from the old IdP must be refused at once, not for up to
// metadataRefresh.
func TestReviewMetadataCacheFollowsConfig(t *testing.T) {
	x, y := samltest.New("https://x.example.org"), samltest.New("https://y.example.org")
	y.Signer = samltest.NewSigner("IdP Y", 2048)
	entity := func(m []byte) string {
		s := string(m)
		s = strings.TrimPrefix(s, `<?xml version="1.0"?>`)
		return strings.TrimSpace(s)
	}
	aggregate := []byte(`<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">` +
		entity(x.Metadata()) + entity(y.Metadata()) + `</md:EntitiesDescriptor>`)
	var down atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(aggregate)
	}))
	defer srv.Close()
	f := newFixture(t, nil)
	f.env.HTTPClient = srv.Client()
	f.conn = &gatehouse.Connection{ID: "con_fed", TenantID: "ten_1", Type: gatehouse.ConnSAML}
	begin := func() {
		f.flow = &connector.Flow{ID: "flw_" + samltest.ID()}
		if _, err := f.c.Begin(context.Background(), f.flow); err != nil {
			t.Fatal(err)
		}
	}
	f.configure(map[string]any{"idp_metadata_url": srv.URL + "/metadata", "idp_entity_id": x.EntityID})
	begin()
	rvAccepted(t, f, samltest.Bytes(x.Response(signedBoth(f.opts()))), rvSubject)

	f.configure(map[string]any{"idp_metadata_url": srv.URL + "/metadata", "idp_entity_id": y.EntityID})
	begin()
	o := signedBoth(f.opts())
	o.Issuer = x.EntityID
	rvRefused(t, f, samltest.Bytes(x.Response(o)), nil)
	begin()
	rvAccepted(t, f, samltest.Bytes(y.Response(signedBoth(f.opts()))), rvSubject)

	// The same through the last-good-copy fallback: X cached and stale,
	// the connection switched to Y, the metadata URL failing.
	f.conn.ID = "con_fed2"
	f.configure(map[string]any{"idp_metadata_url": srv.URL + "/metadata", "idp_entity_id": x.EntityID})
	begin()
	rvAccepted(t, f, samltest.Bytes(x.Response(signedBoth(f.opts()))), rvSubject)
	f.clock.Add(metadataRefresh + time.Second)
	f.configure(map[string]any{"idp_metadata_url": srv.URL + "/metadata", "idp_entity_id": y.EntityID})
	down.Store(true)
	begin()
	o = signedBoth(f.opts())
	o.Issuer = x.EntityID
	rvRefused(t, f, samltest.Bytes(x.Response(o)), nil)
}

// TestReviewHTTPBinding: the HTTP-POST binding's form (saml-bindings
// §3.5.4): only the body's SAMLResponse is read, once; other bindings'
// parameters are refused.
func TestReviewHTTPBinding(t *testing.T) {
	f := newFixture(t, nil)
	valid := func() []byte { return rvSigned(t, f, f.opts(), &rvSig{}, nil).bytes() }
	evil := func() []byte {
		d := rvUnsigned(f, f.opts(), nil)
		rvSetEvil(d.ass)
		return d.bytes()
	}
	b64 := base64.StdEncoding.EncodeToString
	postForm := func(body string, query string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, publicURL+"/sso/saml/con_test1/acs"+query, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	finish := func(r *http.Request) (*gatehouse.Identity, error) { return f.c.Finish(context.Background(), f.flow, r) }
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		accept bool
	}{
		{"control: base64 wrapped at 76 columns with CRLF", func() *http.Request {
			s := b64(valid())
			var w strings.Builder
			for len(s) > 76 {
				w.WriteString(s[:76] + "\r\n")
				s = s[76:]
			}
			w.WriteString(s)
			return postForm(url.Values{"SAMLResponse": {w.String()}}.Encode(), "")
		}, true},
		{"two SAMLResponse fields: an evil one first", func() *http.Request {
			return postForm("SAMLResponse="+url.QueryEscape(b64(evil()))+"&SAMLResponse="+url.QueryEscape(b64(valid())), "")
		}, false},
		{"SAMLResponse only in the query string", func() *http.Request {
			return postForm("RelayState=x", "?SAMLResponse="+url.QueryEscape(b64(valid())))
		}, false},
		{"evil SAMLResponse in the body, valid one in the query", func() *http.Request {
			return postForm("SAMLResponse="+url.QueryEscape(b64(evil())), "?SAMLResponse="+url.QueryEscape(b64(valid())))
		}, false},
		{"GET (HTTP-Redirect binding) with the response in the query", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, publicURL+"/sso/saml/con_test1/acs?SAMLResponse="+url.QueryEscape(b64(valid())), nil)
		}, false},
		{"SimpleSign parameters (SigAlg) beside a valid response", func() *http.Request {
			return postForm(url.Values{"SAMLResponse": {b64(valid())}, "SigAlg": {"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"}, "Signature": {"AAAA"}}.Encode(), "")
		}, false},
		{"an artifact (SAMLart) beside a valid response", func() *http.Request {
			return postForm(url.Values{"SAMLResponse": {b64(valid())}, "SAMLart": {"AAQAA"}}.Encode(), "")
		}, false},
		{"URL-safe base64 alphabet", func() *http.Request {
			return postForm(url.Values{"SAMLResponse": {base64.URLEncoding.EncodeToString(append(valid(), "\n\n\n"...))}}.Encode(), "")
		}, false},
		{"base64 with trailing garbage", func() *http.Request {
			return postForm(url.Values{"SAMLResponse": {b64(valid()) + "!!"}}.Encode(), "")
		}, false},
		{"base64 of base64", func() *http.Request {
			return postForm(url.Values{"SAMLResponse": {b64([]byte(b64(valid())))}}.Encode(), "")
		}, false},
		{"deflated (Redirect-binding encoding) in a POST", func() *http.Request {
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, flate.DefaultCompression)
			_, _ = w.Write(valid())
			_ = w.Close()
			return postForm(url.Values{"SAMLResponse": {b64(buf.Bytes())}}.Encode(), "")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := finish(tc.req())
			switch {
			case tc.accept && (err != nil || id.Subject != rvSubject):
				t.Fatalf("valid control: id %v err %v", id, err)
			case !tc.accept && (err == nil || id != nil):
				t.Fatalf("ACCEPTED: %+v", id)
			case !tc.accept:
				t.Logf("refused: %v", err)
			}
		})
	}
}
