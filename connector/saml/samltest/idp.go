// Package samltest is an in-process SAML IdP for tests: real RSA keys,
// real XML signatures (goxmldsig) and XML encryption (crewjam's xmlenc),
// responses built field by field so tests can forge and mutate them
// (signature wrapping, comment injection, extra assertions...).
package samltest

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"sync"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// Namespaces.
const (
	NSAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	NSProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	NSDSig      = "http://www.w3.org/2000/09/xmldsig#"

	FormatPersistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	FormatTransient  = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	FormatEmail      = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
)

// Signer is a key and its self-signed certificate.
type Signer struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// CertPEM returns the certificate in PEM.
func (s *Signer) CertPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Cert.Raw}))
}

var keyCache sync.Map // bits/name -> *Signer

// NewSigner returns a cached (per name and size) RSA key with a
// certificate valid from 2000 to 2100: key generation is slow and tests
// need only a handful.
func NewSigner(name string, bits int) *Signer {
	k := fmt.Sprintf("%s/%d", name, bits)
	if s, ok := keyCache.Load(k); ok {
		return s.(*Signer)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	s, _ := keyCache.LoadOrStore(k, &Signer{Key: key, Cert: cert})
	return s.(*Signer)
}

// IdP is a test identity provider.
type IdP struct {
	EntityID string
	SSOURL   string
	SLOURL   string
	Signer   *Signer
	// ExtraCerts are published in the metadata too (rollover tests).
	ExtraCerts []*x509.Certificate
}

// New returns an IdP whose entity ID and endpoints live under base.
func New(base string) *IdP {
	return &IdP{
		EntityID: base + "/idp",
		SSOURL:   base + "/idp/sso",
		SLOURL:   base + "/idp/slo",
		Signer:   NewSigner("Test IdP", 2048),
	}
}

// Metadata returns the IdP's EntityDescriptor.
func (i *IdP) Metadata() []byte {
	certs := append([]*x509.Certificate{i.Signer.Cert}, i.ExtraCerts...)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="%s">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
`, xmlEscape(i.EntityID))
	for _, c := range certs {
		fmt.Fprintf(&b, `    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
`, base64.StdEncoding.EncodeToString(c.Raw))
	}
	fmt.Fprintf(&b, `    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="%s"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="%s"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%s"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
`, xmlEscape(i.SLOURL), xmlEscape(i.SSOURL), xmlEscape(i.SSOURL))
	return b.Bytes()
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Options describe one response. Zero fields get working defaults from
// the SP fields (ACS, Audience) and Now.
type Options struct {
	Now          time.Time
	ACS          string // Destination and Recipient
	Audience     string // the SP entity ID
	InResponseTo string
	Destination  *string // overrides ACS for Response Destination
	Recipient    *string // overrides ACS for Recipient
	Issuer       string  // default the IdP entity ID

	NameID       string
	NameIDFormat string // default persistent
	SessionIndex string
	Attributes   map[string][]string
	AssertionID  string

	IssueInstant time.Time // default Now
	NotBefore    time.Time // default Now - 1 min
	NotOnOrAfter time.Time // default Now + 5 min (Conditions and SubjectConfirmationData)

	SignResponse  bool
	SignAssertion bool
	// SHA1 signs with RSA-SHA1 and SHA-1 digests.
	SHA1 bool
	// SignWith overrides the IdP's key (an attacker's key); its
	// certificate goes in KeyInfo.
	SignWith *Signer

	// EncryptTo encrypts the assertion to this SP certificate.
	EncryptTo *x509.Certificate
	// BlockCipher for encryption (default AES-256-GCM).
	BlockCipher xmlenc.BlockCipher

	Status string // default Success
}

// ID returns a fresh xs:ID.
func ID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("_%x", b)
}

// Assertion builds the (unsigned) assertion element.
func (i *IdP) Assertion(o *Options) *etree.Element {
	i.defaults(o)
	recipient := o.ACS
	if o.Recipient != nil {
		recipient = *o.Recipient
	}
	a := &crewjam.Assertion{
		ID:           o.AssertionID,
		IssueInstant: o.IssueInstant,
		Version:      "2.0",
		Issuer:       crewjam.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: o.Issuer},
		Subject: &crewjam.Subject{
			NameID: &crewjam.NameID{Format: o.NameIDFormat, Value: o.NameID},
			SubjectConfirmations: []crewjam.SubjectConfirmation{{
				Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &crewjam.SubjectConfirmationData{
					InResponseTo: o.InResponseTo,
					NotOnOrAfter: o.NotOnOrAfter,
					Recipient:    recipient,
				},
			}},
		},
		Conditions: &crewjam.Conditions{
			NotBefore:            o.NotBefore,
			NotOnOrAfter:         o.NotOnOrAfter,
			AudienceRestrictions: []crewjam.AudienceRestriction{{Audience: crewjam.Audience{Value: o.Audience}}},
		},
		AuthnStatements: []crewjam.AuthnStatement{{
			AuthnInstant: o.IssueInstant,
			SessionIndex: o.SessionIndex,
			AuthnContext: crewjam.AuthnContext{AuthnContextClassRef: &crewjam.AuthnContextClassRef{
				Value: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}},
		}},
	}
	if len(o.Attributes) > 0 {
		st := crewjam.AttributeStatement{}
		for name, vals := range o.Attributes {
			attr := crewjam.Attribute{Name: name, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
			for _, v := range vals {
				attr.Values = append(attr.Values, crewjam.AttributeValue{Type: "xs:string", Value: v})
			}
			st.Attributes = append(st.Attributes, attr)
		}
		a.AttributeStatements = []crewjam.AttributeStatement{st}
	}
	return a.Element()
}

func (i *IdP) defaults(o *Options) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.IssueInstant.IsZero() {
		o.IssueInstant = o.Now
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = o.Now.Add(-time.Minute)
	}
	if o.NotOnOrAfter.IsZero() {
		o.NotOnOrAfter = o.Now.Add(5 * time.Minute)
	}
	if o.Issuer == "" {
		o.Issuer = i.EntityID
	}
	if o.NameIDFormat == "" {
		o.NameIDFormat = FormatPersistent
	}
	if o.AssertionID == "" {
		o.AssertionID = ID()
	}
	if o.SessionIndex == "" {
		o.SessionIndex = ID()
	}
	if o.Status == "" {
		o.Status = crewjam.StatusSuccess
	}
}

// Response builds the response document as options say: signed response,
// signed assertion, both or neither; optionally encrypted.
func (i *IdP) Response(o Options) *etree.Document {
	assertion := i.Assertion(&o)
	if o.SignAssertion {
		assertion = i.Sign(assertion, &o)
	}
	var assertionEl *etree.Element = assertion
	if o.EncryptTo != nil {
		assertionEl = Encrypt(assertion, o.EncryptTo, o.BlockCipher)
	}
	dest := o.ACS
	if o.Destination != nil {
		dest = *o.Destination
	}
	resp := &crewjam.Response{
		ID:           ID(),
		InResponseTo: o.InResponseTo,
		Version:      "2.0",
		IssueInstant: o.IssueInstant,
		Destination:  dest,
		Issuer:       &crewjam.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: o.Issuer},
		Status:       crewjam.Status{StatusCode: crewjam.StatusCode{Value: o.Status}},
	}
	el := resp.Element()
	el.AddChild(assertionEl)
	if o.SignResponse {
		el = i.Sign(el, &o)
	}
	doc := etree.NewDocument()
	doc.SetRoot(el)
	return doc
}

// Sign returns el with an enveloped signature placed after its Issuer
// (saml-core §5.4.1 and the schema's order), by the IdP's key or
// o.SignWith, RSA-SHA256 (RSA-SHA1 with o.SHA1), exclusive C14N, the
// certificate in KeyInfo.
func (i *IdP) Sign(el *etree.Element, o *Options) *etree.Element {
	s := i.Signer
	if o != nil && o.SignWith != nil {
		s = o.SignWith
	}
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{
		Certificate: [][]byte{s.Cert.Raw}, PrivateKey: s.Key, Leaf: s.Cert,
	}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if o != nil && o.SHA1 {
		ctx.Hash = crypto.SHA1
		_ = ctx.SetSignatureMethod(dsig.RSASHA1SignatureMethod)
	} else {
		_ = ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod)
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		panic(err)
	}
	// goxmldsig appends the Signature last without indexing it, so
	// rebuild the element with the Signature after the Issuer.
	sig := signed.ChildElements()[len(signed.ChildElements())-1]
	out := etree.NewElement(signed.Tag)
	out.Space = signed.Space
	out.Attr = append(out.Attr, signed.Attr...)
	for _, ch := range append([]etree.Token(nil), signed.Child...) {
		if ch == etree.Token(sig) {
			continue
		}
		out.AddChild(ch)
		if e, ok := ch.(*etree.Element); ok && e.Tag == "Issuer" {
			out.AddChild(sig)
		}
	}
	return out
}

// Encrypt wraps el in saml:EncryptedAssertion, encrypted to cert with
// RSA-OAEP key transport and the given block cipher (AES-256-GCM if nil).
func Encrypt(el *etree.Element, cert *x509.Certificate, cipher xmlenc.BlockCipher) *etree.Element {
	if cipher == nil {
		cipher = xmlenc.AES256GCM
	}
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	plain, err := doc.WriteToBytes()
	if err != nil {
		panic(err)
	}
	enc := xmlenc.OAEP()
	enc.BlockCipher = cipher
	data, err := enc.Encrypt(cert, plain, nil)
	if err != nil {
		panic(err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ea := etree.NewElement("saml:EncryptedAssertion")
	ea.CreateAttr("xmlns:saml", NSAssertion)
	ea.AddChild(data)
	return ea
}

// Bytes serializes a response document.
func Bytes(doc *etree.Document) []byte {
	b, err := doc.WriteToBytes()
	if err != nil {
		panic(err)
	}
	return b
}

// Form returns the url.Values an HTTP-POST binding form sends.
func Form(doc []byte, relayState string) url.Values {
	return url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(doc)}, "RelayState": {relayState}}
}

// ParseRedirect decodes an HTTP-Redirect binding AuthnRequest URL and
// returns the request's ID, its ACS URL and the RelayState.
func ParseRedirect(u string) (id, acs, relayState string, err error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", "", "", err
	}
	raw, err := base64.StdEncoding.DecodeString(pu.Query().Get("SAMLRequest"))
	if err != nil {
		return "", "", "", err
	}
	x, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), 1<<20))
	if err != nil {
		return "", "", "", err
	}
	var req crewjam.AuthnRequest
	if err := xml.Unmarshal(x, &req); err != nil {
		return "", "", "", err
	}
	return req.ID, req.AssertionConsumerServiceURL, pu.Query().Get("RelayState"), nil
}
