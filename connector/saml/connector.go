// Package saml is Gatehouse's SAML 2.0 service provider: one connector per
// tenant connection to a SAML IdP (Okta, Entra ID, ADFS, Google Workspace,
// OneLogin, Shibboleth, Keycloak, SimpleSAMLphp...).
//
// It verifies SAML responses itself, in one parse of the document
// (xmldoc.go: the parser and its guard rules; c14n.go, dsig.go: exclusive
// canonicalization and XML Signature; response.go: the SAML checks), and
// uses crewjam/saml for metadata, AuthnRequests, logout and XML Encryption.
// The checks (issue 6): a size limit before any parsing,
// DOCTYPE/comment/depth/round-trip refusals, a single assertion anywhere in
// the document, signatures verified only against the configured IdP
// certificates, the identity read only from the verified element, our own
// clock skew, a replay cache shared by all replicas, SHA-1 and short keys
// refused by default, and a subject that is never a transient NameID.
package saml

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// Type returns the SAML connection type.
func Type() *connector.Type {
	return &connector.Type{
		Name:      gatehouse.ConnSAML,
		Configure: configure,
		Describe:  describe,
		Open: func(ctx context.Context, env connector.Env, c *gatehouse.Connection, secrets json.RawMessage) (connector.Connector, error) {
			return Open(env, c, secrets)
		},
	}
}

// Register adds the SAML type to the connector registry.
func Register() { connector.Register(Type()) }

// Connector is an opened SAML connection. Besides connector.Connector it
// implements connector.FlowStateFinder, Metadata, the SLO methods and,
// when the connection allows it, connector.IdPInitiator.
type Connector struct {
	env        connector.Env
	conn       *gatehouse.Connection
	cfg        Config
	signing    []parsedPair
	encryption []parsedPair
	fixedIdP   *idpInfo // nil when the IdP metadata comes from a URL

	// spMu guards sp, the ServiceProvider template of the last IdP
	// settings seen (newSP copies it).
	spMu sync.Mutex
	sp   *spTemplate
}

// spTemplate is a ServiceProvider built for one idpInfo (fixed, or one
// fetch of the metadata URL).
type spTemplate struct {
	idp *idpInfo
	sp  crewjam.ServiceProvider
}

// idpInitiatedConnector is a Connector that accepts unsolicited responses;
// Open returns it only when the connection allows IdP-initiated login, so
// the login handler's type assertion on connector.IdPInitiator is the
// switch.
type idpInitiatedConnector struct{ *Connector }

// FinishUnsolicited verifies an IdP-initiated response (no InResponseTo).
func (c idpInitiatedConnector) FinishUnsolicited(ctx context.Context, r *http.Request) (*gatehouse.Identity, error) {
	return c.finish(ctx, nil, r)
}

// IdPInitiatedTarget is the local path an IdP-initiated login lands on
// (the login handler checks it again).
func (c idpInitiatedConnector) IdPInitiatedTarget() string { return c.cfg.IdPInitiatedTarget }

// Open returns a connector for c. It is cheap: IdP metadata from a URL is
// fetched on first use and cached per process.
func Open(env connector.Env, c *gatehouse.Connection, secrets json.RawMessage) (connector.Connector, error) {
	sc, err := open(env, c, secrets)
	if err != nil {
		return nil, err
	}
	if sc.cfg.AllowIdPInitiated {
		return idpInitiatedConnector{sc}, nil
	}
	return sc, nil
}

// registerTripleDES lets crewjam's xmlenc decrypt tripledes-cbc, which it
// leaves unregistered: ADFS and other IdPs still encrypt with it by default.
var registerTripleDES sync.Once

func open(env connector.Env, c *gatehouse.Connection, secrets json.RawMessage) (*Connector, error) {
	registerTripleDES.Do(func() { xmlenc.RegisterDecrypter(xmlenc.TripleDES) })
	sc := &Connector{env: env, conn: c}
	if err := json.Unmarshal(c.Config, &sc.cfg); err != nil {
		return nil, fmt.Errorf("saml: connection %s config: %w", c.ID, err)
	}
	if sc.cfg.NameIDFormat == "" {
		sc.cfg.NameIDFormat = "persistent"
	}
	var sec Secrets
	if err := json.Unmarshal(secrets, &sec); err != nil {
		return nil, fmt.Errorf("saml: connection %s secrets: %w", c.ID, err)
	}
	if len(sec.Signing) == 0 || len(sec.Encryption) == 0 {
		return nil, fmt.Errorf("saml: connection %s has no SP keys", c.ID)
	}
	for _, set := range []struct {
		in  []KeyPair
		out *[]parsedPair
	}{{sec.Signing, &sc.signing}, {sec.Encryption, &sc.encryption}} {
		for _, kp := range set.in {
			p, err := kp.parse()
			if err != nil {
				return nil, fmt.Errorf("connection %s: %w", c.ID, err)
			}
			*set.out = append(*set.out, p)
		}
	}
	info, err := staticIdP(&sc.cfg, env.Clock)
	if err != nil {
		return nil, err
	}
	sc.fixedIdP = info
	return sc, nil
}

func (c *Connector) logger() *slog.Logger {
	if c.env.Logger != nil {
		return c.env.Logger
	}
	return slog.Default()
}

// URLs of this connection's SP endpoints (HELPERS.md contract).
func spURLs(publicURL, id string) (entityID, acs, metadata, slo string) {
	base := publicURL + "/sso/saml/" + url.PathEscape(id)
	return base + "/metadata", base + "/acs", base + "/metadata", base + "/slo"
}

func (c *Connector) skew() time.Duration {
	return time.Duration(c.cfg.ClockSkewSeconds) * time.Second
}

// dsigClock adapts the injected gatehouse.Clock to goxmldsig's clock, so
// crewjam and goxmldsig read time from it.
type clockAdapter struct {
	clockwork.Clock
	now func() time.Time
}

func (a clockAdapter) Now() time.Time                  { return a.now() }
func (a clockAdapter) Since(t time.Time) time.Duration { return a.now().Sub(t) }
func (a clockAdapter) Until(t time.Time) time.Duration { return t.Sub(a.now()) }

func dsigClock(c gatehouse.Clock) *dsig.Clock {
	return dsig.NewFakeClock(clockAdapter{Clock: clockwork.NewRealClock(), now: c.Now})
}

// requestedNameIDFormat is the configured format when the IdP's metadata
// lists it (or lists nothing), else emailAddress if listed, else
// unspecified.
func (c *Connector) requestedNameIDFormat(idp *idpInfo) string {
	want := nameIDFormats[c.cfg.NameIDFormat]
	if len(idp.NameIDFormats) == 0 {
		return want
	}
	has := func(f string) bool {
		for _, g := range idp.NameIDFormats {
			if g == f {
				return true
			}
		}
		return false
	}
	switch {
	case has(want):
		return want
	case has(formatEmail):
		return formatEmail
	}
	return formatUnspecified
}

// newSP returns a crewjam ServiceProvider for one operation: a copy of
// the connector's template for idp, with this operation's settings. A
// fresh one per request keeps per-request state (the verifier's record of
// what it verified) apart. crewjam never writes to a ServiceProvider, so
// the copies may share the template's slices and IdP descriptor.
func (c *Connector) newSP(idp *idpInfo, v *verifier, allowUnsolicited bool) *crewjam.ServiceProvider {
	c.spMu.Lock()
	t := c.sp
	if t == nil || t.idp != idp {
		t = &spTemplate{idp: idp, sp: c.buildSP(idp)}
		c.sp = t
	}
	c.spMu.Unlock()
	sp := t.sp
	sp.AllowIDPInitiated = allowUnsolicited
	if v != nil {
		sp.SignatureVerifier = v
	}
	return &sp
}

// buildSP builds the ServiceProvider template for idp: URLs, keys, the IdP
// descriptor (its certificates base64-encoded) are the same for every
// request until the connection or the IdP metadata changes.
func (c *Connector) buildSP(idp *idpInfo) crewjam.ServiceProvider {
	entityID, acs, metadata, slo := spURLs(c.env.PublicURL, c.conn.ID)
	acsURL, _ := url.Parse(acs)
	mdURL, _ := url.Parse(metadata)
	sloURL, _ := url.Parse(slo)
	sp := crewjam.ServiceProvider{
		EntityID:                         entityID,
		Key:                              c.signing[0].key,
		Certificate:                      c.signing[0].cert,
		EncryptionKey:                    c.encryption[0].key,
		EncryptionCertificate:            c.encryption[0].cert,
		MetadataURL:                      *mdURL,
		AcsURL:                           *acsURL,
		SloURL:                           *sloURL,
		IDPMetadata:                      idpEntityDescriptor(idp),
		AuthnNameIDFormat:                crewjam.NameIDFormat(c.requestedNameIDFormat(idp)),
		RejectSHA1Signatures:             !c.cfg.AllowSHA1,
		LogoutSignatureMethod:            dsig.RSASHA256SignatureMethod,
		AssertionConsumerServiceBindings: []string{crewjam.HTTPPostBinding},
		LogoutBindings:                   []string{crewjam.HTTPRedirectBinding},
		Clock:                            dsigClock(clockOf(c.env)),
		MetadataValidDuration:            7 * 24 * time.Hour,
	}
	if c.cfg.SignAuthnRequests {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	// Every SP key decrypts: encryption keys first, then the others (an IdP
	// sometimes encrypts to the first certificate of the metadata).
	for _, p := range c.encryption[1:] {
		sp.DecryptionKeys = append(sp.DecryptionKeys, p.key)
	}
	for _, p := range c.signing {
		sp.DecryptionKeys = append(sp.DecryptionKeys, p.key)
	}
	return sp
}

// idpEntityDescriptor renders idpInfo as the EntityDescriptor crewjam reads
// endpoints and (unused, see verifier) certificates from.
func idpEntityDescriptor(idp *idpInfo) *crewjam.EntityDescriptor {
	d := crewjam.IDPSSODescriptor{}
	for _, cert := range idp.Certs {
		d.KeyDescriptors = append(d.KeyDescriptors, crewjam.KeyDescriptor{Use: "signing", KeyInfo: crewjam.KeyInfo{
			X509Data: crewjam.X509Data{X509Certificates: []crewjam.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}},
		}})
	}
	if idp.SSORedirect != "" {
		d.SingleSignOnServices = append(d.SingleSignOnServices, crewjam.Endpoint{Binding: crewjam.HTTPRedirectBinding, Location: idp.SSORedirect})
	}
	if idp.SSOPost != "" {
		d.SingleSignOnServices = append(d.SingleSignOnServices, crewjam.Endpoint{Binding: crewjam.HTTPPostBinding, Location: idp.SSOPost})
	}
	return &crewjam.EntityDescriptor{EntityID: idp.EntityID, IDPSSODescriptors: []crewjam.IDPSSODescriptor{d}}
}

// Begin makes the AuthnRequest: HTTP-Redirect when the IdP offers it, else
// an HTTP-POST form. RelayState is the flow's state, an opaque random
// handle checked against the flow cookie, never a URL.
func (c *Connector) Begin(ctx context.Context, flow *connector.Flow) (connector.Action, error) {
	idp, err := c.idp(ctx)
	if err != nil {
		return connector.Action{}, &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Message: "The identity provider's settings could not be loaded. Please try again later.", Err: err}
	}
	sp := c.newSP(idp, nil, false)
	if flow.State == "" {
		// 43 characters: within the 80-byte RelayState limit of
		// saml-bindings §3.4.3.
		flow.State = secret.NewToken("")
	}
	binding, location := crewjam.HTTPRedirectBinding, idp.SSORedirect
	if location == "" {
		binding, location = crewjam.HTTPPostBinding, idp.SSOPost
	}
	req, err := sp.MakeAuthenticationRequest(location, binding, crewjam.HTTPPostBinding)
	if err != nil {
		return connector.Action{}, fmt.Errorf("saml: make AuthnRequest: %w", err)
	}
	flow.RequestID = req.ID
	if flow.ForceLogin {
		// SAML core §3.4.1: ForceAuthn makes the IdP authenticate the user
		// again rather than rely on its session (an app's prompt=login or
		// max_age at Gatehouse).
		force := true
		req.ForceAuthn = &force
	}
	if binding == crewjam.HTTPRedirectBinding {
		u, err := req.Redirect(flow.State, sp)
		if err != nil {
			return connector.Action{}, fmt.Errorf("saml: redirect AuthnRequest: %w", err)
		}
		return connector.Action{RedirectURL: u.String()}, nil
	}
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	raw, err := doc.WriteToBytes()
	if err != nil {
		return connector.Action{}, err
	}
	html, err := postForm(location, "SAMLRequest", base64.StdEncoding.EncodeToString(raw), flow.State)
	if err != nil {
		return connector.Action{}, err
	}
	return connector.Action{HTML: html}, nil
}

// postTemplate is the HTTP-POST binding page (saml-bindings §3.5.4). It has
// no inline script, so it works under a strict Content-Security-Policy: the
// same-origin /sso/assets/autopost.js submits it, and without scripts the
// user presses the button (autofocused, so Enter works too).
var postTemplate = template.Must(template.New("post").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Continue to your identity provider</title>
<script src="/sso/assets/autopost.js"></script></head>
<body><form method="post" action="{{.URL}}" data-autopost>
<input type="hidden" name="{{.Field}}" value="{{.Value}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<p>Continue to your identity provider to sign in.</p>
<button type="submit" autofocus>Continue</button>
</form></body></html>
`))

func postForm(action, field, value, relayState string) ([]byte, error) {
	var buf bytes.Buffer
	err := postTemplate.Execute(&buf, struct{ URL, Field, Value, RelayState string }{action, field, value, relayState})
	return buf.Bytes(), err
}

// FlowState returns the RelayState of an ACS post: the handle the login
// handler compares, in constant time, with the flow cookie's state.
func (c *Connector) FlowState(r *http.Request) string {
	if err := readForm(r); err != nil {
		return ""
	}
	return r.PostForm.Get("RelayState")
}

// Metadata returns the SP metadata: entity ID, ACS (HTTP-POST), SLO
// (HTTP-Redirect), every signing and encryption certificate (two of each
// during a key rollover).
func (c *Connector) Metadata(ctx context.Context) ([]byte, error) {
	idp := c.fixedIdP
	if idp == nil {
		idp = &idpInfo{}
	}
	sp := c.newSP(idp, nil, false)
	ed := sp.Metadata()
	spd := &ed.SPSSODescriptors[0]
	var methods []crewjam.EncryptionMethod
	for _, kd := range spd.KeyDescriptors {
		if kd.Use == "encryption" {
			methods = kd.EncryptionMethods
		}
	}
	keyDesc := func(use string, cert *x509.Certificate, m []crewjam.EncryptionMethod) crewjam.KeyDescriptor {
		return crewjam.KeyDescriptor{Use: use, EncryptionMethods: m, KeyInfo: crewjam.KeyInfo{
			X509Data: crewjam.X509Data{X509Certificates: []crewjam.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}},
		}}
	}
	spd.KeyDescriptors = nil
	for _, p := range c.signing {
		spd.KeyDescriptors = append(spd.KeyDescriptors, keyDesc("signing", p.cert, nil))
	}
	for _, p := range c.encryption {
		spd.KeyDescriptors = append(spd.KeyDescriptors, keyDesc("encryption", p.cert, methods))
	}
	spd.NameIDFormats = []crewjam.NameIDFormat{crewjam.PersistentNameIDFormat, crewjam.EmailAddressNameIDFormat}
	if c.cfg.IdPSLOURL == "" && (c.fixedIdP == nil || c.fixedIdP.SLORedirect == "") {
		spd.SingleLogoutServices = nil
	}
	out, err := xml.MarshalIndent(ed, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

// describe returns the SAML fields of API responses.
func describe(env connector.Env, conn *gatehouse.Connection) map[string]any {
	entityID, acs, metadata, slo := spURLs(env.PublicURL, conn.ID)
	var cfg Config
	_ = json.Unmarshal(conn.Config, &cfg)
	out := map[string]any{
		"sp_entity_id":         entityID,
		"acs_url":              acs,
		"sp_metadata_url":      metadata,
		"slo_url":              slo,
		"allow_idp_initiated":  cfg.AllowIdPInitiated,
		"idp_initiated_target": cfg.IdPInitiatedTarget,
		"sign_authn_requests":  cfg.SignAuthnRequests,
		"allow_sha1":           cfg.AllowSHA1,
		"allow_short_keys":     cfg.AllowShortKeys,
		"clock_skew_seconds":   cfg.ClockSkewSeconds,
		"name_id_format":       cfg.NameIDFormat,
		"subject_attribute":    cfg.SubjectAttribute,
		"idp_metadata_url":     cfg.IdPMetadataURL,
		"idp_slo_url":          cfg.IdPSLOURL,
	}
	info, err := staticIdP(&cfg, env.Clock)
	if info == nil && err == nil && cfg.IdPMetadataXML != "" {
		// Metadata URL: describe the last fetched copy.
		info, err = parseIdPMetadata([]byte(cfg.IdPMetadataXML), cfg.IdPEntityID, cfg.AllowShortKeys, env.Clock)
	}
	if err != nil {
		out["idp_error"] = publicCause(err)
	}
	if info != nil {
		now := clockOf(env).Now()
		out["idp_entity_id"] = info.EntityID
		out["idp_sso_url"] = first(info.SSORedirect, info.SSOPost)
		if cfg.IdPSLOURL == "" {
			out["idp_slo_url"] = info.SLORedirect
		}
		var certs []map[string]any
		warn := false
		for _, cert := range info.Certs {
			ci := certInfo(cert, now)
			certs = append(certs, ci)
			warn = warn || ci["expires_soon"].(bool)
		}
		out["idp_certificates"] = certs
		out["idp_certificate_expiry_warning"] = warn
	}
	return out
}
