package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

func TestSingleLogout(t *testing.T) {
	f := newFixture(t, nil)
	c := f.c.(*Connector)
	u, reqID, err := c.LogoutRedirect(context.Background(), "00u1ana", samltest.FormatPersistent, "_sess1", "st-logout")
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	q := pu.Query()
	if !strings.HasPrefix(u, f.idp.SLOURL+"?") || q.Get("SAMLRequest") == "" || q.Get("Signature") == "" ||
		q.Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" || q.Get("RelayState") != "st-logout" || reqID == "" {
		t.Fatalf("logout URL %s (request %q)", u, reqID)
	}

	slo := publicURL + "/sso/saml/" + f.conn.ID + "/slo"
	logoutResponse := func(inResponseTo, destination string, sign bool, status string) *http.Request {
		lr := &crewjam.LogoutResponse{
			ID: samltest.ID(), InResponseTo: inResponseTo, Version: "2.0", IssueInstant: f.clock.Now(),
			Destination: destination, Issuer: &crewjam.Issuer{Value: f.idp.EntityID},
			Status: crewjam.Status{StatusCode: crewjam.StatusCode{Value: status}},
		}
		el := lr.Element()
		if sign {
			el = f.idp.Sign(el, nil)
		}
		doc := etree.NewDocument()
		doc.SetRoot(el)
		b, _ := doc.WriteToBytes()
		r := httptest.NewRequest(http.MethodPost, slo, strings.NewReader(url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(b)}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	if err := c.FinishLogout(context.Background(), logoutResponse(reqID, slo, true, crewjam.StatusSuccess), reqID); err != nil {
		t.Fatalf("FinishLogout: %v", err)
	}
	for name, r := range map[string]*http.Request{
		"another request":   logoutResponse("id-other", slo, true, crewjam.StatusSuccess),
		"unsigned":          logoutResponse(reqID, slo, false, crewjam.StatusSuccess),
		"wrong destination": logoutResponse(reqID, "https://evil.example.com/slo", true, crewjam.StatusSuccess),
		"IdP failure":       logoutResponse(reqID, slo, true, "urn:oasis:names:tc:SAML:2.0:status:Responder"),
	} {
		if err := c.FinishLogout(context.Background(), r, reqID); !errors.Is(err, ErrLogoutResponse) {
			t.Errorf("%s: err %v", name, err)
		}
	}

	// Without an IdP logout endpoint the caller just ends the local session.
	g := newFixture(t, map[string]any{
		"idp_metadata_xml": nil, "idp_sso_url": "https://idp.example.org/idp/sso",
		"idp_entity_id": f.idp.EntityID, "idp_certificate": f.idp.Signer.CertPEM(),
	})
	if _, _, err := g.c.(*Connector).LogoutRedirect(context.Background(), "x", "", "", ""); !errors.Is(err, ErrNoSLO) {
		t.Fatalf("err %v", err)
	}
}

// TestAttributeMapping: the connection's mapping and the common attribute
// names of Entra ID / ADFS (claim URIs) and LDAP OIDs fill the profile.
func TestAttributeMapping(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name  string
		attrs map[string][]string
		check func(t *testing.T, email, given, family, display string, groups []string)
	}{
		{"Entra ID claim URIs", map[string][]string{
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": {"ana@acme.com"},
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname":    {"Ana"},
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname":      {"Lima"},
			"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups":     {"g1", "g2"},
		}, func(t *testing.T, email, given, family, display string, groups []string) {
			if email != "ana@acme.com" || given != "Ana" || family != "Lima" || display != "Ana Lima" || strings.Join(groups, ",") != "g1,g2" {
				t.Fatalf("%s %s %s %s %v", email, given, family, display, groups)
			}
		}},
		{"LDAP OIDs", map[string][]string{
			"urn:oid:0.9.2342.19200300.100.1.3": {"bo@acme.com"},
			"urn:oid:2.16.840.1.113730.3.1.241": {"Bo B."},
			"urn:oid:1.3.6.1.4.1.5923.1.5.1.1":  {"staff"},
		}, func(t *testing.T, email, given, family, display string, groups []string) {
			if email != "bo@acme.com" || display != "Bo B." || strings.Join(groups, ",") != "staff" {
				t.Fatalf("%s %s %v", email, display, groups)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := signedBoth(f.opts())
			o.Attributes = tc.attrs
			id, err := f.finish(samltest.Bytes(f.idp.Response(o)))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, id.Email, id.GivenName, id.FamilyName, id.DisplayName, id.Groups)
		})
	}
	t.Run("configured names", func(t *testing.T) {
		f.conn.Mapping.Email = "workMail"
		f.conn.Mapping.Groups = "teams"
		defer func() { f.conn.Mapping.Email, f.conn.Mapping.Groups = "", "" }()
		o := signedBoth(f.opts())
		o.Attributes = map[string][]string{"workMail": {"w@acme.com"}, "email": {"other@acme.com"}, "teams": {"t1"}}
		id, err := f.finish(samltest.Bytes(f.idp.Response(o)))
		if err != nil {
			t.Fatal(err)
		}
		if id.Email != "w@acme.com" || strings.Join(id.Groups, ",") != "t1" {
			t.Fatalf("%+v", id)
		}
	})
}
