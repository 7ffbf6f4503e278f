package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	_ "crypto/sha1" // for crypto.SHA1.New when allow_sha1 is on
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// XML Signature algorithm identifiers (XML Signature 1.1 §6; RFC 6931).
var (
	signatureMethods = map[string]struct {
		hash  crypto.Hash
		ecdsa bool
	}{
		"http://www.w3.org/2000/09/xmldsig#rsa-sha1":          {crypto.SHA1, false},
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":   {crypto.SHA256, false},
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha384":   {crypto.SHA384, false},
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512":   {crypto.SHA512, false},
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1":   {crypto.SHA1, true},
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": {crypto.SHA256, true},
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": {crypto.SHA384, true},
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": {crypto.SHA512, true},
	}
	digestMethods = map[string]crypto.Hash{
		"http://www.w3.org/2000/09/xmldsig#sha1":        crypto.SHA1,
		"http://www.w3.org/2001/04/xmlenc#sha256":       crypto.SHA256,
		"http://www.w3.org/2001/04/xmldsig-more#sha384": crypto.SHA384,
		"http://www.w3.org/2001/04/xmlenc#sha512":       crypto.SHA512,
	}
)

// errNoSignature: the element carries no enveloped signature (which may be
// fine: an unsigned Response whose assertion is signed).
var errNoSignature = errors.New("no enveloped signature")

// sigPolicy is what a signature must satisfy: made by one of certs (the
// configured IdP certificates; KeyInfo in the message is never read), no
// SHA-1 unless allowSHA1, RSA keys of 2048 bits (1024 with allowShort),
// certificate valid at now.
type sigPolicy struct {
	certs      []*x509.Certificate
	allowSHA1  bool
	allowShort bool
	now        time.Time
}

var c14nBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// verifyEnveloped checks the enveloped signature of element e (a Response
// or an Assertion): XML Signature core validation (§3.2) restricted to
// what saml-core §5.4 allows, against the configured certificates only.
// It returns errNoSignature if e has no ds:Signature child.
//
// What it insists on, and the attack each stops:
//   - e has an ID, and exactly one ds:Signature anywhere below e refers to
//     it; that one is a direct child of e (enveloped) with exactly one
//     Reference whose URI is "#"+ID (saml-core §5.4.2). Signature wrapping
//     moves the signed element away from where the reader looks; here the
//     reader reads e, the element the digest covers.
//   - Transforms are the enveloped-signature transform then at most one
//     canonicalization (saml-core §5.4.4); no XPath, no XSLT.
//   - SHA-1 anywhere in the signature only with allow_sha1.
//   - The digest of e's canonical form (without the signature) equals the
//     DigestValue (constant-time), and SignedInfo's canonical form carries
//     a valid signature by a configured certificate.
func (d *xdoc) verifyEnveloped(e int32, pol *sigPolicy) error {
	el := &d.els[e]
	sig := int32(-1)
	var extra bool
	d.children(e, func(c int32, ch *xel) bool {
		if ch.is(nsDSig, "Signature") {
			if sig >= 0 {
				extra = true
			}
			sig = c
		}
		return true
	})
	if sig < 0 {
		return errNoSignature
	}
	if extra {
		return fmt.Errorf("%w: more than one Signature on %s", ErrSignature, el.local)
	}
	id, _ := el.attr("ID")
	if id == "" {
		return fmt.Errorf("%w: signed %s has no ID", ErrSignature, el.local)
	}
	// xs:ID values are unique in a document (XML Schema §3.3.8); two
	// elements with the signed ID are how wrapping attacks make a reader
	// that resolves the Reference find another element than ours.
	for i := range d.els {
		if v, ok := d.els[i].attr("ID"); ok && v == id && int32(i) != e {
			return fmt.Errorf("%w: %w: ID %q on two elements", ErrSignature, errStricter, id)
		}
	}
	// No other signature below e may claim to sign it.
	for i := e + 1; i < int32(len(d.els)) && d.within(i, e); i++ {
		if i == sig || !d.els[i].is(nsDSig, "Signature") {
			continue
		}
		if d.refersTo(i, id) {
			return fmt.Errorf("%w: a nested signature references %s", ErrSignature, el.local)
		}
	}
	if err := d.checkSHA1(sig, pol.allowSHA1); err != nil {
		return err
	}
	signedInfo, sigValue, err := d.signatureParts(sig)
	if err != nil {
		return err
	}
	c14nMethodEl, sigMethodEl, ref, err := d.signedInfoParts(signedInfo)
	if err != nil {
		return err
	}
	if uri, _ := d.els[ref].attr("URI"); uri != "#"+id {
		return fmt.Errorf("%w: Reference URI %q is not #%s", ErrSignature, uri, id)
	}
	refC14N, digestAlg, digestValue, err := d.referenceParts(ref)
	if err != nil {
		return err
	}
	sm, _ := d.els[sigMethodEl].attr("Algorithm")
	method, ok := signatureMethods[sm]
	if !ok {
		return fmt.Errorf("%w: SignatureMethod %q", ErrSignature, sm)
	}
	siAlg, _ := d.els[c14nMethodEl].attr("Algorithm")
	siC14N, ok := d.c14nFor(siAlg, c14nMethodEl)
	if !ok {
		return fmt.Errorf("%w: CanonicalizationMethod %q", ErrSignature, siAlg)
	}
	want, err := decodeBase64(d.text(digestValue))
	if err != nil {
		return fmt.Errorf("%w: DigestValue: %v", ErrSignature, err)
	}
	sigBytes, err := decodeBase64(d.text(sigValue))
	if err != nil {
		return fmt.Errorf("%w: SignatureValue: %v", ErrSignature, err)
	}

	bp := c14nBufs.Get().(*[]byte)
	defer c14nBufs.Put(bp)
	buf, err := d.canonicalize((*bp)[:0], e, sig, refC14N)
	if err != nil {
		return err
	}
	h := digestAlg.New()
	h.Write(buf)
	got := h.Sum(nil)
	if len(want) != len(got) || subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("%w: digest of %s does not match", ErrSignature, el.local)
	}
	buf, err = d.canonicalize(buf[:0], signedInfo, -1, siC14N)
	*bp = buf
	if err != nil {
		return err
	}
	h = method.hash.New()
	h.Write(buf)
	hashed := h.Sum(nil)
	var lastErr error = errors.New("no trusted IdP certificate")
	for _, cert := range pol.certs {
		if err := pol.checkCert(cert); err != nil {
			lastErr = err
			continue
		}
		if err := checkSignature(cert.PublicKey, method.hash, method.ecdsa, hashed, sigBytes); err != nil {
			lastErr = err
			continue
		}
		return nil
	}
	if errors.Is(lastErr, ErrWeakCrypto) {
		return lastErr
	}
	return fmt.Errorf("%w: signature on %s not made by a configured IdP certificate: %v", ErrSignature, el.local, lastErr)
}

// within reports whether element i is in the subtree rooted at e.
func (d *xdoc) within(i, e int32) bool {
	for ; i >= 0; i = d.els[i].parent {
		if i == e {
			return true
		}
	}
	return false
}

// refersTo reports whether Signature sig has a Reference to id (or to the
// whole document).
func (d *xdoc) refersTo(sig int32, id string) bool {
	found := false
	d.children(sig, func(si int32, el *xel) bool {
		if el.is(nsDSig, "SignedInfo") {
			d.children(si, func(_ int32, r *xel) bool {
				if uri, _ := r.attr("URI"); r.is(nsDSig, "Reference") && (uri == "" || uri == "#"+id) {
					found = true
				}
				return !found
			})
		}
		return !found
	})
	return found
}

// checkSHA1 refuses a SignatureMethod or DigestMethod anywhere in the
// signature that uses SHA-1 (as crewjam/saml's RejectSHA1Signatures did:
// SHA-1 collisions are practical, RFC 9155 / NIST SP 800-131A).
func (d *xdoc) checkSHA1(sig int32, allow bool) error {
	if allow {
		return nil
	}
	for i := sig + 1; i < int32(len(d.els)) && d.within(i, sig); i++ {
		el := &d.els[i]
		if el.local != "SignatureMethod" && el.local != "DigestMethod" {
			continue
		}
		for _, a := range el.attrs {
			if a.local == "Algorithm" && sha1Algs[a.value] {
				return fmt.Errorf("%w: %s uses %s (allow_sha1 is off)", ErrWeakCrypto, el.local, a.value)
			}
		}
	}
	return nil
}

// dsigKids returns, for each name, the last ds: child of e with that
// local name and how many there are.
func (d *xdoc) dsigKids(e int32, names ...string) (last []int32, count []int) {
	last, count = make([]int32, len(names)), make([]int, len(names))
	d.children(e, func(c int32, el *xel) bool {
		if el.space == nsDSig {
			for i, n := range names {
				if el.local == n {
					last[i] = c
					count[i]++
				}
			}
		}
		return true
	})
	return last, count
}

// signatureParts returns SignedInfo and SignatureValue: exactly one of
// each, at most one KeyInfo (ignored), as goxmldsig's validateShape.
func (d *xdoc) signatureParts(sig int32) (signedInfo, value int32, err error) {
	k, n := d.dsigKids(sig, "SignedInfo", "SignatureValue", "KeyInfo")
	if n[0] != 1 || n[1] != 1 || n[2] > 1 {
		return -1, -1, fmt.Errorf("%w: Signature needs one SignedInfo, one SignatureValue, at most one KeyInfo", ErrSignature)
	}
	return k[0], k[1], nil
}

// signedInfoParts returns SignedInfo's CanonicalizationMethod,
// SignatureMethod and its one Reference.
func (d *xdoc) signedInfoParts(si int32) (c14n, method, ref int32, err error) {
	k, n := d.dsigKids(si, "CanonicalizationMethod", "SignatureMethod", "Reference")
	if n[0] != 1 || n[1] != 1 || n[2] != 1 {
		return -1, -1, -1, fmt.Errorf("%w: SignedInfo needs one CanonicalizationMethod, one SignatureMethod and exactly one Reference", ErrSignature)
	}
	return k[0], k[1], k[2], nil
}

// referenceParts reads the Reference's transforms (enveloped signature,
// then at most one canonicalization, inclusive C14N 1.0 by default), digest
// method and value.
func (d *xdoc) referenceParts(ref int32) (c14nMethod, crypto.Hash, int32, error) {
	m := c14nMethod{}
	k, n := d.dsigKids(ref, "Transforms", "DigestMethod", "DigestValue")
	if n[0] != 1 || n[1] != 1 || n[2] != 1 {
		return m, 0, -1, fmt.Errorf("%w: Reference needs Transforms, DigestMethod and DigestValue", ErrSignature)
	}
	transforms, digestMethod, value := k[0], k[1], k[2]
	var algs []string
	var last int32
	var other bool
	d.children(transforms, func(c int32, el *xel) bool {
		if !el.is(nsDSig, "Transform") {
			other = true
			return false
		}
		a, _ := el.attr("Algorithm")
		algs = append(algs, a)
		last = c
		return true
	})
	if other || len(algs) == 0 || len(algs) > 2 || algs[0] != algEnvelopedSignature {
		return m, 0, -1, fmt.Errorf("%w: transforms %q (want enveloped-signature, then a canonicalization)", ErrSignature, algs)
	}
	if len(algs) == 2 {
		var ok bool
		if m, ok = d.c14nFor(algs[1], last); !ok {
			return m, 0, -1, fmt.Errorf("%w: transform %q", ErrSignature, algs[1])
		}
	}
	alg, _ := d.els[digestMethod].attr("Algorithm")
	h, ok := digestMethods[alg]
	if !ok || !h.Available() {
		return m, 0, -1, fmt.Errorf("%w: DigestMethod %q", ErrSignature, alg)
	}
	return m, h, value, nil
}

// decodeBase64 decodes an xs:base64Binary value, which may be wrapped.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

// checkCert applies the key-size and validity rules to a configured
// certificate (goxmldsig refused a certificate outside its validity
// period; we keep that).
func (pol *sigPolicy) checkCert(cert *x509.Certificate) error {
	if err := checkKeySize(cert, pol.allowShort); err != nil {
		return err
	}
	if pol.now.Before(cert.NotBefore) || pol.now.After(cert.NotAfter) {
		return errors.New("IdP certificate is not valid at this time")
	}
	return nil
}

// checkKeySize refuses an RSA key under 2048 bits (1024 with
// allow_short_keys): NIST SP 800-131A.
func checkKeySize(cert *x509.Certificate, allowShort bool) error {
	if k, ok := cert.PublicKey.(*rsa.PublicKey); ok {
		min := 2048
		if allowShort {
			min = 1024
		}
		if k.N.BitLen() < min {
			return fmt.Errorf("%w: IdP key has %d bits", ErrWeakCrypto, k.N.BitLen())
		}
	}
	return nil
}

// checkSignature verifies an RSA PKCS #1 v1.5 or ECDSA signature over
// hashed. An ECDSA SignatureValue is r||s (XML Signature 1.1 §6.4.3);
// goxmldsig passed it to x509 as ASN.1 DER, which is accepted too.
func checkSignature(pub any, h crypto.Hash, isECDSA bool, hashed, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if isECDSA {
			return errors.New("ECDSA signature method with an RSA key")
		}
		return rsa.VerifyPKCS1v15(k, h, hashed, sig)
	case *ecdsa.PublicKey:
		if !isECDSA {
			return errors.New("RSA signature method with an ECDSA key")
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*size {
			r := new(big.Int).SetBytes(sig[:size])
			s := new(big.Int).SetBytes(sig[size:])
			if ecdsa.Verify(k, hashed, r, s) {
				return nil
			}
			return errors.New("ECDSA verification failure")
		}
		if ecdsa.VerifyASN1(k, hashed, sig) {
			return nil
		}
		return errors.New("ECDSA verification failure")
	}
	return fmt.Errorf("unsupported IdP key type %T", pub)
}
