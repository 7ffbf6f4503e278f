package saml

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// sameVerdict runs doc through the one-pass verifier and the crewjam path
// it replaced (verifyCrewjam) and fails the test unless both accept it with
// the same identity, or both refuse it. The one-pass verifier may refuse
// what the old path accepted only with errStricter (its documented extra
// rules); it must never accept what the old path refused.
func sameVerdict(t testing.TB, c *Connector, flow *connector.Flow, doc []byte) (newErr, oldErr error) {
	t.Helper()
	ctx := context.Background()
	newID, _, newErr := c.verify(ctx, flow, doc, false)
	oldID, oldErr := c.verifyCrewjam(ctx, flow, doc)
	switch {
	case newErr == nil && oldErr == nil:
		if !reflect.DeepEqual(newID, oldID) {
			t.Fatalf("same response, different identities:\none-pass %+v\ncrewjam  %+v", newID, oldID)
		}
	case newErr == nil:
		t.Fatalf("one-pass verifier accepted what crewjam refused (%v): %+v\n%s", oldErr, newID, doc)
	case oldErr == nil && !errors.Is(newErr, errStricter):
		t.Fatalf("one-pass verifier refused what crewjam accepted: %v\n%s", newErr, doc)
	}
	return newErr, oldErr
}

// TestDifferentialCrewjam: on valid responses of every shape the tests
// build (signed response, assertion or both; encrypted with each cipher;
// NameID formats, attributes, IdP-initiated) and on every forged one of
// the security table, the one-pass verifier and the old crewjam path agree.
func TestDifferentialCrewjam(t *testing.T) {
	f := newFixture(t, nil)
	c := f.c.(*Connector)
	encCert := c.encryption[0].cert
	mods := map[string]func(o *samltest.Options){
		"signed response":  func(o *samltest.Options) { o.SignResponse = true },
		"signed assertion": func(o *samltest.Options) { o.SignAssertion = true },
		"both signed":      func(o *samltest.Options) { o.SignResponse, o.SignAssertion = true, true },
		"encrypted, signed response": func(o *samltest.Options) {
			o.SignResponse, o.EncryptTo, o.BlockCipher = true, encCert, xmlenc.AES256GCM
		},
		"encrypted CBC, signed assertion": func(o *samltest.Options) {
			o.SignAssertion, o.EncryptTo, o.BlockCipher = true, encCert, xmlenc.AES128CBC
		},
		"email NameID, no attributes": func(o *samltest.Options) {
			o.SignAssertion, o.NameID, o.NameIDFormat, o.Attributes = true, "bo@acme.com", samltest.FormatEmail, nil
		},
		"escaped text and many values": func(o *samltest.Options) {
			o.SignResponse = true
			o.NameID = `a&b<c>"d'e`
			o.Attributes = map[string][]string{"groups": {"r&d", "<ops>", " spaced ", "ünïcødé", ""}, "mail": {"x@acme.com"}}
		},
		"expired": func(o *samltest.Options) { o.SignResponse = true; o.Now = o.Now.Add(-10 * time.Minute) },
		"NotOnOrAfter at skew": func(o *samltest.Options) {
			o.SignResponse, o.IssueInstant, o.NotOnOrAfter = true, o.Now.Add(-10*time.Second), o.Now.Add(-90*time.Second)
		},
	}
	for name, mod := range mods {
		t.Run(name, func(t *testing.T) {
			o := f.opts()
			mod(&o)
			newErr, oldErr := sameVerdict(t, c, f.flow, samltest.Bytes(f.idp.Response(o)))
			t.Logf("one-pass: %v; crewjam: %v", newErr, oldErr)
		})
	}
	for _, tc := range securityCases(f) {
		t.Run("forged/"+tc.name, func(t *testing.T) {
			newErr, oldErr := sameVerdict(t, c, f.flow, tc.doc())
			if newErr == nil {
				t.Fatal("accepted")
			}
			// Same public message: the refusal is classified alike.
			if gatehouse.ErrorMessage(newErr) != gatehouse.ErrorMessage(oldErr) {
				t.Logf("messages differ: one-pass %v; crewjam %v", newErr, oldErr)
			}
		})
	}
	t.Run("IdP-initiated", func(t *testing.T) {
		g := newFixture(t, map[string]any{"allow_idp_initiated": true})
		o := signedBoth(g.opts())
		o.InResponseTo = ""
		sameVerdict(t, g.c.(idpInitiatedConnector).Connector, nil, samltest.Bytes(g.idp.Response(o)))
		o = signedBoth(g.opts()) // solicited, posted as unsolicited
		if newErr, _ := sameVerdict(t, g.c.(idpInitiatedConnector).Connector, nil, samltest.Bytes(g.idp.Response(o))); !errors.Is(newErr, ErrUnsolicited) {
			t.Fatalf("err %v", newErr)
		}
	})
}

// FuzzDifferential feeds mutations of valid and forged responses to both
// verifiers (sameVerdict): the one-pass verifier never accepts what the
// crewjam path refused, accepts with the same identity what it accepted
// (or refuses it by one of its documented stricter rules). Responses with
// only the assertion signed leave the Response around it open to the
// fuzzer's edits, which is where the two parsers could disagree.
//
//	go test ./connector/saml -run '^$' -fuzz FuzzDifferential -fuzzminimizetime 0 -fuzztime 60s
func FuzzDifferential(f *testing.F) {
	fx := newFixture(f, nil)
	c := fx.c.(*Connector)
	for _, mod := range []func(o *samltest.Options){
		func(o *samltest.Options) { o.SignAssertion = true },
		func(o *samltest.Options) { o.SignResponse = true },
		func(o *samltest.Options) { o.SignResponse, o.SignAssertion = true, true },
		func(o *samltest.Options) {
			o.SignAssertion, o.NameID, o.Attributes = true, "x&amp;y", map[string][]string{"g": {"a", "b"}}
		},
	} {
		o := fx.opts()
		mod(&o)
		f.Add(samltest.Bytes(fx.idp.Response(o)))
	}
	for _, tc := range securityCases(fx)[:12] {
		f.Add(tc.doc())
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		sameVerdict(t, c, fx.flow, doc)
	})
}

// TestEncryptedIDAndAttribute: a NameID given as an EncryptedID and an
// Attribute as an EncryptedAttribute (saml-core §2.2.4, §2.7.3.2), inside a
// signed assertion, are decrypted and read alike by both verifiers.
func TestEncryptedIDAndAttribute(t *testing.T) {
	f := newFixture(t, nil)
	c := f.c.(*Connector)
	cert := c.encryption[0].cert
	o := f.opts()
	o.SignAssertion = true
	o.Attributes = map[string][]string{"email": {"ana@acme.com"}, "groups": {"eng", "ops"}}
	a := f.idp.Assertion(&o)
	// encryptAs replaces el by an element named tag holding el encrypted.
	encryptAs := func(el *etree.Element, tag string) {
		parent := el.Parent()
		plain := el.Copy() // standalone: declare the prefix it uses
		plain.CreateAttr("xmlns:saml", samltest.NSAssertion)
		enc := samltest.Encrypt(plain, cert, xmlenc.AES128CBC)
		enc.Tag = tag
		parent.InsertChildAt(el.Index(), enc)
		parent.RemoveChild(el)
	}
	encryptAs(a.FindElement("./Subject/NameID"), "EncryptedID")
	for _, attr := range a.FindElements("./AttributeStatement/Attribute") {
		if attr.SelectAttrValue("Name", "") == "groups" {
			encryptAs(attr, "EncryptedAttribute")
		}
	}
	doc := samltest.Bytes(f.responseWith(f.idp.Sign(a, &o), o))
	newErr, oldErr := sameVerdict(t, c, f.flow, doc)
	if newErr != nil || oldErr != nil {
		t.Fatalf("one-pass %v; crewjam %v", newErr, oldErr)
	}
	id, _, _ := c.verify(context.Background(), f.flow, doc, false)
	if id.Subject != "00u1ana" || len(id.Groups) != 2 {
		t.Fatalf("identity %+v", id)
	}
}
