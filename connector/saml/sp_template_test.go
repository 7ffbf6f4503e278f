package saml

import "testing"

// TestSPTemplate: newSP hands out copies of one template per IdP settings;
// what one request sets (its verifier, whether it accepts an unsolicited
// response) never reaches the template or another request's copy, and
// new IdP settings (a metadata refresh) build a new template.
func TestSPTemplate(t *testing.T) {
	f := newFixture(t, nil)
	c := f.c.(*Connector)
	idp := c.fixedIdP
	v := newVerifier(idp.Certs, false, false, nil)
	a := c.newSP(idp, v, true)
	b := c.newSP(idp, nil, false)
	if a == b || !a.AllowIDPInitiated || b.AllowIDPInitiated || a.SignatureVerifier != v || b.SignatureVerifier != nil {
		t.Fatalf("copies share per-request state: %+v / %+v", a, b)
	}
	if c.sp.sp.AllowIDPInitiated || c.sp.sp.SignatureVerifier != nil {
		t.Fatal("a request's settings reached the template")
	}
	if a.IDPMetadata.EntityID != idp.EntityID || a.AcsURL.String() != f.acs() || len(a.DecryptionKeys) == 0 {
		t.Fatalf("template %+v", a)
	}
	tmpl := c.sp
	next := *idp
	next.EntityID = "https://idp2.example.org"
	if got := c.newSP(&next, nil, false); got.IDPMetadata.EntityID != next.EntityID || c.sp == tmpl {
		t.Fatalf("new IdP settings kept the old template: %q", got.IDPMetadata.EntityID)
	}
}
