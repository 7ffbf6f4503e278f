package saml

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// verifier checks every XML signature crewjam/saml asks about (it is the
// ServiceProvider's SignedElementVerifier) when crewjam parses a message:
// the LogoutResponse (FinishLogout). SAML responses at the ACS are verified
// by our one-pass verifier instead (response.go, dsig.go). It trusts only the configured
// IdP certificates: KeyInfo is removed before verification, so a
// certificate sent in the message is never used, not even to choose among
// the trusted ones; each trusted certificate is tried in turn (several are
// trusted during an IdP key rollover). It refuses SHA-1 and short keys
// unless the connection opts in, a signature that is not a single direct
// child of the element it signs, and a signed element holding more than
// the one assertion the response may carry. It records what it verified so
// that Finish can check the identity came from a verified element.
type verifier struct {
	certs      []*x509.Certificate
	allowSHA1  bool
	allowShort bool
	clock      *dsig.Clock

	responseVerified bool
	assertionIDs     map[string]bool
	policyErr        error
}

func newVerifier(certs []*x509.Certificate, allowSHA1, allowShort bool, clock *dsig.Clock) *verifier {
	return &verifier{certs: certs, allowSHA1: allowSHA1, allowShort: allowShort, clock: clock, assertionIDs: map[string]bool{}}
}

var sha1Algs = map[string]bool{
	dsig.RSASHA1SignatureMethod:                   true,
	dsig.ECDSASHA1SignatureMethod:                 true,
	"http://www.w3.org/2000/09/xmldsig#sha1":      true,
	"http://www.w3.org/2000/09/xmldsig#dsa-sha1":  true,
	"http://www.w3.org/2000/09/xmldsig#hmac-sha1": true,
}

// VerifySignature implements crewjam's SignatureVerifier.
func (v *verifier) VerifySignature(ctx *dsig.ValidationContext, el *etree.Element) error {
	_, err := v.VerifySignedElement(ctx, el)
	return err
}

// VerifySignedElement implements crewjam's SignedElementVerifier: el is the
// Response or Assertion, detached with its namespace declarations.
func (v *verifier) VerifySignedElement(_ *dsig.ValidationContext, el *etree.Element) (*etree.Element, error) {
	signed, err := v.verify(el)
	if err != nil && v.policyErr == nil && (errors.Is(err, ErrWeakCrypto) || errors.Is(err, ErrAssertionCount)) {
		v.policyErr = err
	}
	return signed, err
}

func (v *verifier) verify(el *etree.Element) (*etree.Element, error) {
	id := el.SelectAttrValue("ID", "")
	if id == "" {
		return nil, errors.New("signed element has no ID")
	}
	// Exactly one Signature may reference this element, and it must be
	// its direct child (an enveloped signature, saml-core §5.4.1).
	var direct *etree.Element
	for _, sig := range descendants(el, "Signature") {
		if sig.NamespaceURI() != nsDSig {
			continue
		}
		refs := 0
		for _, ref := range sig.FindElements("./SignedInfo/Reference") {
			if uri := ref.SelectAttrValue("URI", ""); uri == "" || uri == "#"+id {
				refs++
			}
		}
		if refs == 0 {
			continue
		}
		if sig.Parent() != el || direct != nil || refs != 1 {
			return nil, errors.New("the signature is not one enveloped signature of the element")
		}
		direct = sig
	}
	if direct == nil {
		return nil, errors.New("no signature references the element")
	}
	for _, path := range []string{".//SignatureMethod", ".//DigestMethod"} {
		for _, m := range direct.FindElements(path) {
			alg := m.SelectAttrValue("Algorithm", "")
			if sha1Algs[alg] && !v.allowSHA1 {
				return nil, fmt.Errorf("%w: %s uses %s (allow_sha1 is off)", ErrWeakCrypto, m.Tag, alg)
			}
		}
	}
	// Never let the message choose the key.
	stripped := el.Copy()
	for _, sig := range stripped.ChildElements() {
		if sig.Tag == "Signature" && sig.NamespaceURI() == nsDSig {
			for _, ki := range sig.ChildElements() {
				if ki.Tag == "KeyInfo" {
					sig.RemoveChild(ki)
				}
			}
		}
	}
	var lastErr error = errors.New("no trusted IdP certificate")
	for _, cert := range v.certs {
		if err := v.checkKey(cert); err != nil {
			lastErr = err
			continue
		}
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
		ctx.IdAttribute = "ID"
		ctx.Clock = v.clock
		signed, err := ctx.Validate(stripped)
		if err != nil {
			lastErr = err
			continue
		}
		if err := v.checkSigned(signed); err != nil {
			return nil, err
		}
		return signed, nil
	}
	return nil, fmt.Errorf("signature on %s not made by a configured IdP certificate: %w", el.Tag, lastErr)
}

func (v *verifier) checkKey(cert *x509.Certificate) error {
	return checkKeySize(cert, v.allowShort)
}

// checkSigned looks inside what the signature covers: a Response must hold
// exactly one assertion (plain or encrypted) anywhere, an Assertion none.
func (v *verifier) checkSigned(signed *etree.Element) error {
	n, err := countNested(signed)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case signed.Tag == "Response" && signed.NamespaceURI() == nsProtocol:
		if n != 1 {
			return fmt.Errorf("%w: signed Response holds %d", ErrAssertionCount, n)
		}
		v.responseVerified = true
	case signed.Tag == "Assertion" && signed.NamespaceURI() == nsAssertion:
		if n != 0 {
			return fmt.Errorf("%w: signed Assertion holds %d more", ErrAssertionCount, n)
		}
		v.assertionIDs[signed.SelectAttrValue("ID", "")] = true
	case signed.Tag == "LogoutResponse" && signed.NamespaceURI() == nsProtocol:
		if n != 0 {
			return fmt.Errorf("%w: signed LogoutResponse holds %d", ErrAssertionCount, n)
		}
	default:
		return fmt.Errorf("%w: signed element %s", ErrMalformed, strings.TrimSpace(signed.Tag))
	}
	return nil
}

// descendants returns the elements below el (not el) with local name tag,
// in document order.
func descendants(el *etree.Element, tag string) []*etree.Element {
	var out []*etree.Element
	var walk func(*etree.Element)
	walk = func(e *etree.Element) {
		for _, c := range e.ChildElements() {
			if c.Tag == tag {
				out = append(out, c)
			}
			walk(c)
		}
	}
	walk(el)
	return out
}
