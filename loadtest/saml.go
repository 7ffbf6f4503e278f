package loadtest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"runtime"
	"time"

	"github.com/gatehouse-sso/gatehouse/connector/saml/samltest"
)

// samlConn is a SAML connection to the tool's own IdP (samltest: real
// RSA-2048 keys, real XML signatures).
type samlConn struct {
	idp      *samltest.IdP
	id       string
	acs      string
	audience string
}

func (e *Env) createSAMLConnection(ctx context.Context, idpInitiated bool) (*samlConn, error) {
	if err := e.EnsureTenant(ctx); err != nil {
		return nil, err
	}
	idp := samltest.New("https://idp-" + e.RunID + ".bench.example")
	var c struct {
		ID         string `json:"id"`
		ACS        string `json:"acs_url"`
		SPEntityID string `json:"sp_entity_id"`
	}
	err := e.API(ctx, "POST", "/api/v1/tenants/"+e.Tenant+"/connections", map[string]any{
		"type": "saml", "name": fmt.Sprintf("Bench SAML %s %v", e.RunID, idpInitiated), "enabled": true, "jit": jitPolicy(),
		"idp_metadata_xml": string(idp.Metadata()), "allow_idp_initiated": idpInitiated,
	}, &c)
	if err != nil {
		return nil, err
	}
	if c.ACS == "" || c.SPEntityID == "" {
		return nil, fmt.Errorf("SAML connection %s: no acs_url or sp_entity_id in the API answer", c.ID)
	}
	return &samlConn{idp: idp, id: c.ID, acs: c.ACS, audience: c.SPEntityID}, nil
}

// response signs one response for email (assertion signed, as Okta and
// Entra ID do by default), valid for the next ten minutes.
func (s *samlConn) response(email, inResponseTo string) string {
	now := time.Now()
	doc := s.idp.Response(samltest.Options{
		Now: now, ACS: s.acs, Audience: s.audience, InResponseTo: inResponseTo,
		NameID: UserClaims(email)["sub"].(string), NotOnOrAfter: now.Add(10 * time.Minute),
		SignAssertion: true,
		Attributes: map[string][]string{
			"email": {email}, "givenName": {"Bench"}, "surname": {email[:8]},
		},
	})
	return base64.StdEncoding.EncodeToString(samltest.Bytes(doc))
}

// SAMLIdPInitiated: logins by unsolicited (IdP-initiated) responses
// signed before the timed window. An SP-initiated response must carry
// InResponseTo = the AuthnRequest's ID, which exists only once the flow
// has started, so it cannot be signed in advance; an IdP-initiated one
// has none, and Gatehouse checks it just as strictly otherwise (signature,
// audience, recipient, validity window, one-time assertion ID). Each flow
// is one POST to the ACS that must answer with a session.
//
// returning: the users log in once during setup, and the timed logins
// are their second.
func SAMLIdPInitiated(returning bool) Scenario {
	return func(ctx context.Context, e *Env) (Flow, error) {
		sc, err := e.createSAMLConnection(ctx, true)
		if err != nil {
			return nil, err
		}
		prefix := "saml"
		if returning {
			prefix = "samlr"
		}
		sign := func(n int) ([]string, error) {
			out := make([]string, n)
			t0 := time.Now()
			err := Parallel(n, runtime.NumCPU(), func(i int) error {
				out[i] = sc.response(e.Email(prefix, i), "")
				return nil
			})
			e.logf("signed %d SAML responses in %s", n, time.Since(t0).Round(time.Millisecond))
			return out, err
		}
		post := func(ctx context.Context, resp string) error {
			b := e.Browser()
			r, err := b.Do(ctx, "POST", sc.acs, url.Values{"SAMLResponse": {resp}}, nil)
			if err != nil {
				return err
			}
			if r.Status != 302 || !b.hasSession(hostOf(sc.acs)) {
				return fmt.Errorf("ACS: %d %s", r.Status, trimBody(r.Body))
			}
			return nil
		}
		if returning {
			first, err := sign(e.N)
			if err != nil {
				return nil, err
			}
			if err := Parallel(e.N, e.Concurrency, func(i int) error { return post(ctx, first[i]) }); err != nil {
				return nil, fmt.Errorf("first logins: %w", err)
			}
		}
		resps, err := sign(e.N)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, i int) error { return post(ctx, resps[i]) }, nil
	}
}

// SAMLSPInitiated: the whole SP-initiated flow, GET /t/{tenant}/login
// (AuthnRequest by redirect, flow cookie) then the POST to the ACS with a
// response the tool signs inside the flow for that request's ID. The
// IdP's RSA signing runs in the load tool's process, not Gatehouse's, but
// on the same two cores: flows/s is lower than saml-jit's, Gatehouse's
// CPU per login is the comparable figure.
func SAMLSPInitiated(ctx context.Context, e *Env) (Flow, error) {
	sc, err := e.createSAMLConnection(ctx, false)
	if err != nil {
		return nil, err
	}
	login := e.URLs[0] + "/t/" + e.Tenant + "/login?connection=" + sc.id
	return func(ctx context.Context, i int) error {
		b := e.Browser()
		r, err := b.Do(ctx, "GET", login, nil, nil)
		if err != nil {
			return err
		}
		if r.Status != 302 || r.Location == nil {
			return fmt.Errorf("login: %d %s", r.Status, trimBody(r.Body))
		}
		reqID, _, relay, err := samltest.ParseRedirect(r.Location.String())
		if err != nil {
			return err
		}
		form := url.Values{"SAMLResponse": {sc.response(e.Email("samlsp", i), reqID)}, "RelayState": {relay}}
		r, err = b.Do(ctx, "POST", sc.acs, form, nil)
		if err != nil {
			return err
		}
		if r.Status != 302 || !b.hasSession(hostOf(sc.acs)) {
			return fmt.Errorf("ACS: %d %s", r.Status, trimBody(r.Body))
		}
		return nil
	}, nil
}
