package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// sigSpec describes an enveloped signature built by signAssertion: the
// parts the verifier's rules are about.
type sigSpec struct {
	uri        string   // Reference URI; default "#" + the assertion ID
	emptyURI   bool     // URI="" (the whole document)
	transforms []string // default enveloped-signature, exc-c14n
	c14n       string   // SignedInfo CanonicalizationMethod; default exc-c14n
	digest     string   // default sha256
	method     string   // default rsa-sha256 (ecdsa-sha256 for an ECDSA key)
	extraRef   bool     // a second Reference
	key        crypto.Signer
	derECDSA   bool // ECDSA value as ASN.1 DER instead of r||s
	keyInfo    string
}

// signAssertion returns doc (an unsigned response from the test IdP) with
// its assertion signed as spec says. It computes the digest and the
// SignedInfo canonical form with our canonicalizer, so it tests the
// verifier's structural and algorithm rules; TestSignerAgreesWithGoxmldsig
// shows its default output also verifies with goxmldsig.
func signAssertion(t testing.TB, doc []byte, spec sigSpec) []byte {
	t.Helper()
	d, a, err := parseResponse(doc)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := d.els[a].attr("ID")
	if spec.uri == "" {
		spec.uri = "#" + id
	}
	if spec.emptyURI {
		spec.uri = ""
	}
	if spec.transforms == nil {
		spec.transforms = []string{algEnvelopedSignature, algExcC14N}
	}
	if spec.c14n == "" {
		spec.c14n = algExcC14N
	}
	if spec.digest == "" {
		spec.digest = "http://www.w3.org/2001/04/xmlenc#sha256"
	}
	_, isEC := spec.key.(*ecdsa.PrivateKey)
	if spec.method == "" {
		spec.method = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
		if isEC {
			spec.method = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
		}
	}
	// The digest of the assertion as it is (the signature is not there
	// yet, which is what the enveloped transform gives).
	c14n, _ := d.c14nFor(spec.transforms[len(spec.transforms)-1], -1)
	raw, err := d.canonicalize(nil, a, -1, c14n)
	if err != nil {
		t.Fatal(err)
	}
	h := digestMethods[spec.digest].New()
	h.Write(raw)
	var ref strings.Builder
	ref.WriteString(`<ds:Reference URI="` + spec.uri + `"><ds:Transforms>`)
	for _, tr := range spec.transforms {
		ref.WriteString(`<ds:Transform Algorithm="` + tr + `"/>`)
	}
	ref.WriteString(`</ds:Transforms><ds:DigestMethod Algorithm="` + spec.digest + `"/><ds:DigestValue>` +
		base64.StdEncoding.EncodeToString(h.Sum(nil)) + `</ds:DigestValue></ds:Reference>`)
	refs := ref.String()
	if spec.extraRef {
		refs += refs
	}
	sig := `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="` + spec.c14n +
		`"/><ds:SignatureMethod Algorithm="` + spec.method + `"/>` + refs + `</ds:SignedInfo><ds:SignatureValue>SIG</ds:SignatureValue>` + spec.keyInfo + `</ds:Signature>`
	s := string(doc)
	at := strings.Index(s, "<saml:Assertion")
	issuerEnd := strings.Index(s[at:], "</saml:Issuer>") + at + len("</saml:Issuer>")
	s = s[:issuerEnd] + sig + s[issuerEnd:]
	// Sign SignedInfo's canonical form, read from the document as it will
	// be received.
	d2, err := parseXML([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	si := int32(-1)
	for i := range d2.els {
		if d2.els[i].is(nsDSig, "SignedInfo") {
			si = int32(i)
			break
		}
	}
	m, ok := d2.c14nFor(spec.c14n, -1)
	if !ok {
		m = c14nMethod{exclusive: true}
	}
	raw, err = d2.canonicalize(nil, si, -1, m)
	if err != nil {
		t.Fatal(err)
	}
	alg := signatureMethods[spec.method].hash
	if alg == 0 {
		alg = crypto.SHA256
	}
	hh := alg.New()
	hh.Write(raw)
	var value []byte
	switch k := spec.key.(type) {
	case *rsa.PrivateKey:
		value, err = rsa.SignPKCS1v15(rand.Reader, k, alg, hh.Sum(nil))
	case *ecdsa.PrivateKey:
		if spec.derECDSA {
			value, err = ecdsa.SignASN1(rand.Reader, k, hh.Sum(nil))
		} else {
			var r, ss *big.Int
			r, ss, err = ecdsa.Sign(rand.Reader, k, hh.Sum(nil))
			size := (k.Curve.Params().BitSize + 7) / 8
			value = make([]byte, 2*size)
			r.FillBytes(value[:size])
			ss.FillBytes(value[size:])
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(s, ">SIG<", ">"+base64.StdEncoding.EncodeToString(value)+"<", 1))
}

// TestSignerAgreesWithGoxmldsig: signAssertion's default signature
// verifies on the old path too, so the canonical forms it signs are the
// ones goxmldsig computes.
func TestSignerAgreesWithGoxmldsig(t *testing.T) {
	f := newFixture(t, nil)
	c := f.c.(*Connector)
	doc := signAssertion(t, samltest.Bytes(f.idp.Response(f.opts())), sigSpec{key: f.idp.Signer.Key})
	sameVerdict(t, c, f.flow, doc)
	if _, _, err := c.verify(t.Context(), f.flow, doc, false); err != nil {
		t.Fatal(err)
	}
}

// TestVerifierRules: each rule of verifyEnveloped, on an assertion signed
// by the configured IdP key but built to break that one rule.
func TestVerifierRules(t *testing.T) {
	f := newFixture(t, nil)
	c := f.c.(*Connector)
	key := f.idp.Signer.Key
	unsigned := func() []byte { return samltest.Bytes(f.idp.Response(f.opts())) }
	attacker := samltest.NewSigner("Attacker", 2048)
	attackerKeyInfo := `<ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + base64.StdEncoding.EncodeToString(attacker.Cert.Raw) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo>`
	cases := []struct {
		name string
		spec sigSpec
		want error // nil: accepted
	}{
		{"exclusive c14n", sigSpec{}, nil},
		{"inclusive C14N 1.0 for SignedInfo", sigSpec{c14n: algC14N10}, nil},
		{"C14N 1.1 reference", sigSpec{transforms: []string{algEnvelopedSignature, algC14N11}}, nil},
		{"enveloped only: inclusive C14N 1.0 by default", sigSpec{transforms: []string{algEnvelopedSignature}}, nil},
		{"SHA-512 digest, RSA-SHA512", sigSpec{digest: "http://www.w3.org/2001/04/xmlenc#sha512", method: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"}, nil},
		{"an attacker's certificate in KeyInfo is ignored, not trusted", sigSpec{keyInfo: attackerKeyInfo}, nil},
		{"attacker's key, its certificate in KeyInfo", sigSpec{key: attacker.Key, keyInfo: attackerKeyInfo}, ErrSignature},
		{"Reference URI empty (saml-core §5.4.2 wants #ID)", sigSpec{emptyURI: true}, ErrSignature},
		{"Reference to another ID", sigSpec{uri: "#other"}, ErrSignature},
		{"two References", sigSpec{extraRef: true}, ErrSignature},
		{"no enveloped-signature transform", sigSpec{transforms: []string{algExcC14N}}, ErrSignature},
		{"XPath transform", sigSpec{transforms: []string{algEnvelopedSignature, "http://www.w3.org/TR/1999/REC-xpath-19991116"}}, ErrSignature},
		{"three transforms", sigSpec{transforms: []string{algEnvelopedSignature, algExcC14N, algExcC14N}}, ErrSignature},
		{"unknown c14n", sigSpec{c14n: "urn:x"}, ErrSignature},
		{"SHA-1 digest", sigSpec{digest: "http://www.w3.org/2000/09/xmldsig#sha1"}, ErrWeakCrypto},
		{"RSA-SHA1", sigSpec{method: "http://www.w3.org/2000/09/xmldsig#rsa-sha1"}, ErrWeakCrypto},
		{"ECDSA method with the RSA key", sigSpec{method: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"}, ErrSignature},
		{"HMAC", sigSpec{method: "http://www.w3.org/2000/09/xmldsig#hmac-sha1"}, ErrWeakCrypto},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			if spec.key == nil {
				spec.key = key
			}
			doc := signAssertion(t, unsigned(), spec)
			_, _, err := c.verify(t.Context(), f.flow, doc, false)
			t.Log(err)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("ID on two elements", func(t *testing.T) {
		doc := string(signAssertion(t, unsigned(), sigSpec{key: key}))
		d, a, _ := parseResponse([]byte(doc))
		id, _ := d.els[a].attr("ID")
		doc = strings.Replace(doc, `<samlp:Status`, `<samlp:Extensions><x ID="`+id+`" xmlns="urn:x"/></samlp:Extensions><samlp:Status`, 1)
		if _, _, err := c.verify(t.Context(), f.flow, []byte(doc), false); !errors.Is(err, ErrSignature) || !errors.Is(err, errStricter) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("IdP certificate expired", func(t *testing.T) {
		f.clock.Add(200 * 365 * 24 * time.Hour) // the test certificate ends in 2100
		defer f.clock.Add(-200 * 365 * 24 * time.Hour)
		o := f.opts()
		doc := signAssertion(t, samltest.Bytes(f.idp.Response(o)), sigSpec{key: key})
		if _, _, err := c.verify(t.Context(), f.flow, doc, false); !errors.Is(err, ErrSignature) {
			t.Fatalf("err %v", err)
		}
	})
}

// TestECDSA: an IdP with an ECDSA P-256 certificate; the SignatureValue is
// r||s (XML Signature 1.1 §6.4.3) or, as goxmldsig wrote it, DER.
func TestECDSA(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "EC IdP"},
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
	c := f.c.(*Connector)
	for _, tc := range []struct {
		name string
		spec sigSpec
		want error
	}{
		{"r||s", sigSpec{key: key}, nil},
		{"DER", sigSpec{key: key, derECDSA: true}, nil},
		{"ECDSA-SHA384", sigSpec{key: key, method: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"}, nil},
		{"RSA method with the ECDSA key", sigSpec{key: key, method: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"}, ErrSignature},
		{"signed by the RSA test IdP", sigSpec{key: idp.Signer.Key}, ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := signAssertion(t, samltest.Bytes(idp.Response(f.opts())), tc.spec)
			id, _, err := c.verify(t.Context(), f.flow, doc, false)
			if tc.want == nil && (err != nil || id.Subject != "00u1ana") || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("id %v err %v, want %v", id, err, tc.want)
			}
		})
	}
}
