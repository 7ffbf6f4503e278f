package saml

import (
	"crypto/rsa"
	"fmt"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"

	crewjam "github.com/crewjam/saml"
)

const nsXMLEnc = "http://www.w3.org/2001/04/xmlenc#"

// maxEncryptedKeys bounds the EncryptedKeys tried for one element: each
// costs an RSA private-key operation per SP key, and the element may come
// from an unsigned Response (crewjam/saml's bound, kept).
const maxEncryptedKeys = 4

// decryptionKeys are the SP keys that may decrypt, in crewjam's order:
// the encryption keys, then the signing keys (an IdP sometimes encrypts to
// the first certificate of the metadata).
func (c *Connector) decryptionKeys() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 0, len(c.encryption)+len(c.signing))
	for _, p := range c.encryption {
		keys = append(keys, p.key)
	}
	for _, p := range c.signing {
		keys = append(keys, p.key)
	}
	return keys
}

// decryptElement decrypts e, an element holding xenc:EncryptedData
// (EncryptedAssertion, EncryptedID, EncryptedAttribute), with crewjam's
// xmlenc, and parses the plaintext with our parser. The content key is
// wrapped in an EncryptedKey beside the EncryptedData or in its KeyInfo;
// those addressed to our entity ID are tried first (saml-core errata E43
// §6.3). Every failure is the same ErrDecrypt without detail: whether a
// modified CBC ciphertext decrypts to well-formed XML is what padding
// oracle attacks on XML Encryption learn from (Jager and Somorovsky, 2011).
func (c *Connector) decryptElement(d *xdoc, e int32) (*xdoc, error) {
	// xmlenc works on etree: hand it the element on its own, with the
	// namespace declarations it uses (its exclusive canonical form).
	raw, err := d.canonicalize(nil, e, -1, c14nMethod{exclusive: true})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	et := etree.NewDocument()
	if err := et.ReadFromBytes(raw); err != nil || et.Root() == nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	enc := et.Root()
	var data *etree.Element
	for _, ch := range enc.ChildElements() {
		if ch.Tag == "EncryptedData" && ch.NamespaceURI() == nsXMLEnc {
			if data != nil {
				return nil, fmt.Errorf("%w: two EncryptedData", ErrDecrypt)
			}
			data = ch
		}
	}
	if data == nil {
		return nil, fmt.Errorf("%w: no EncryptedData", ErrDecrypt)
	}
	entityID, _, _, _ := spURLs(c.env.PublicURL, c.conn.ID)
	var mine, others []*etree.Element
	for _, k := range append(enc.FindElements("./EncryptedKey"), data.FindElements("./KeyInfo/EncryptedKey")...) {
		if k.SelectAttrValue("Recipient", "") == entityID {
			mine = append(mine, k)
		} else {
			others = append(others, k)
		}
	}
	candidates := append(mine, others...)
	if len(candidates) > maxEncryptedKeys {
		candidates = candidates[:maxEncryptedKeys]
	}
	if len(candidates) == 0 {
		candidates = []*etree.Element{nil}
	}
	for _, ek := range candidates {
		for _, key := range c.decryptionKeys() {
			plain, err := decryptWith(key, ek, data)
			if err != nil {
				continue
			}
			pd, err := parseXML(plain)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrDecrypt, xmlenc.ErrDecryptionFailed)
			}
			return pd, nil
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrDecrypt, xmlenc.ErrDecryptionFailed)
}

// decryptWith decrypts data with key, through the EncryptedKey ek if not
// nil (as crewjam's decryptWithKey).
func decryptWith(key *rsa.PrivateKey, ek, data *etree.Element) ([]byte, error) {
	if ek == nil {
		return xmlenc.Decrypt(key, data)
	}
	cek, err := xmlenc.Decrypt(key, ek)
	if err != nil {
		return nil, err
	}
	if data.FindElement("./KeyInfo/EncryptedKey") != nil {
		data = data.Copy()
		for _, el := range data.FindElements("./KeyInfo/EncryptedKey") {
			el.Parent().RemoveChild(el)
		}
	}
	return xmlenc.Decrypt(cek, data)
}

// decryptAssertion decrypts the EncryptedAssertion e into a document whose
// root is the one saml:Assertion, holding no other.
func (c *Connector) decryptAssertion(d *xdoc, e int32) (*xdoc, error) {
	ad, err := c.decryptElement(d, e)
	if err != nil {
		return nil, err
	}
	if !ad.els[0].is(nsAssertion, "Assertion") {
		return nil, fmt.Errorf("%w: EncryptedAssertion holds {%s}%s", ErrDecrypt, ad.els[0].space, ad.els[0].local)
	}
	for i := 1; i < len(ad.els); i++ {
		if el := &ad.els[i]; el.space == nsAssertion && (el.local == "Assertion" || el.local == "EncryptedAssertion") {
			return nil, fmt.Errorf("%w: the decrypted assertion holds another", ErrAssertionCount)
		}
	}
	return ad, nil
}

// decryptNameID decrypts an EncryptedID (saml-core §2.2.4), covered by the
// assertion's verified signature, which must hold a saml:NameID.
func (c *Connector) decryptNameID(d *xdoc, e int32) (*crewjam.NameID, error) {
	nd, err := c.decryptElement(d, e)
	if err != nil {
		return nil, err
	}
	if !nd.els[0].is(nsAssertion, "NameID") {
		return nil, fmt.Errorf("%w: EncryptedID holds {%s}%s, not saml:NameID", ErrUnsupported, nd.els[0].space, nd.els[0].local)
	}
	return readNameID(nd, 0), nil
}

// decryptAttribute decrypts an EncryptedAttribute (saml-core §2.7.3.2),
// which must hold a saml:Attribute.
func (c *Connector) decryptAttribute(d *xdoc, e int32) (crewjam.Attribute, error) {
	ad, err := c.decryptElement(d, e)
	if err != nil {
		return crewjam.Attribute{}, err
	}
	if !ad.els[0].is(nsAssertion, "Attribute") {
		return crewjam.Attribute{}, fmt.Errorf("%w: EncryptedAttribute holds {%s}%s", ErrMalformed, ad.els[0].space, ad.els[0].local)
	}
	return readAttribute(ad, 0)
}
