package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// maxFormBytes bounds the ACS request body: a base64 SAMLResponse of
// MaxResponseBytes plus RelayState and some room for line breaks.
const maxFormBytes = (MaxResponseBytes+2)/3*4 + 64<<10

// readForm parses an ACS post with a body limit, once (FlowState and Finish
// both read it).
func readForm(r *http.Request) error {
	if r.PostForm != nil {
		return nil
	}
	if r.Method != http.MethodPost {
		return fmt.Errorf("%w: %s to the ACS (only the HTTP-POST binding is supported)", ErrUnsupported, r.Method)
	}
	if err := parsePostForm(r, maxFormBytes); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: request body over %d bytes", ErrTooLarge, maxFormBytes)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// responseXML returns the decoded SAMLResponse, refusing one larger than
// MaxResponseBytes before decoding it.
func responseXML(r *http.Request) ([]byte, error) {
	if err := readForm(r); err != nil {
		return nil, err
	}
	if r.PostForm.Get("SAMLart") != "" || r.PostForm.Get("SigAlg") != "" {
		return nil, fmt.Errorf("%w: artifact and SimpleSign bindings", ErrUnsupported)
	}
	b64 := r.PostForm.Get("SAMLResponse")
	if b64 == "" {
		return nil, fmt.Errorf("%w: no SAMLResponse", ErrMalformed)
	}
	// IdPs may wrap base64 at 76 columns (most do not: skip the copy).
	if strings.ContainsAny(b64, "\r\n \t") {
		b64 = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b64)
	}
	if base64.StdEncoding.DecodedLen(len(b64)) > MaxResponseBytes+2 {
		return nil, fmt.Errorf("%w: %d base64 characters", ErrTooLarge, len(b64))
	}
	doc, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrMalformed, err)
	}
	if len(doc) > MaxResponseBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(doc))
	}
	return doc, nil
}

// Finish verifies the IdP's response to this browser's AuthnRequest. flow
// comes from the browser's flow cookie; its RequestID must be the
// response's InResponseTo.
func (c *Connector) Finish(ctx context.Context, flow *connector.Flow, r *http.Request) (*gatehouse.Identity, error) {
	if flow == nil || flow.RequestID == "" {
		return nil, refuse(ErrInResponseTo, msgRequest, errors.New("no AuthnRequest ID in the flow"))
	}
	return c.finish(ctx, flow, r)
}

// finish runs every check; flow is nil for an IdP-initiated response.
func (c *Connector) finish(ctx context.Context, flow *connector.Flow, r *http.Request) (*gatehouse.Identity, error) {
	doc, err := responseXML(r)
	if err != nil {
		return nil, refuseKind(err)
	}
	return c.VerifyResponse(ctx, flow, doc)
}

// VerifyResponse checks a decoded SAMLResponse document (Finish without
// the HTTP layer, for tests and the fuzzer).
func (c *Connector) VerifyResponse(ctx context.Context, flow *connector.Flow, doc []byte) (*gatehouse.Identity, error) {
	return c.verifyDocument(ctx, flow, doc, false)
}

// verifyDocument is VerifyResponse; anyAssertion (tests only) lifts the
// one-assertion rule, to show the signature checks hold on their own.
func (c *Connector) verifyDocument(ctx context.Context, flow *connector.Flow, doc []byte, anyAssertion bool) (*gatehouse.Identity, error) {
	if c.env.Replay == nil {
		return nil, refuse(ErrNoReplayCache, "Internal error.", nil)
	}
	id, assertion, err := c.verify(ctx, flow, doc, anyAssertion)
	if err != nil {
		return nil, err
	}
	// Last: the assertion is used once across all replicas. Done after
	// every other check, so a refused response does not burn the ID of an
	// assertion that might still be delivered properly.
	key := "saml:" + c.conn.ID + ":" + assertion.ID
	if err := c.env.Replay.UseOnce(ctx, key, replayExpiry(assertion, c.skew())); err != nil {
		if gatehouse.IsCode(err, gatehouse.ECONFLICT) {
			return nil, refuse(ErrReplayed, msgReplayed, fmt.Errorf("assertion %q", assertion.ID))
		}
		return nil, fmt.Errorf("saml: replay cache: %w", err)
	}
	return id, nil
}

// verify runs every check but the replay cache: one parse of the document
// (checkResponse), our checks on the verified assertion, the identity.
func (c *Connector) verify(ctx context.Context, flow *connector.Flow, doc []byte, anyAssertion bool) (*gatehouse.Identity, *crewjam.Assertion, error) {
	idp, err := c.idp(ctx)
	if err != nil {
		return nil, nil, &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Message: "The identity provider's settings could not be loaded. Please try again later.", Err: err}
	}
	now := clockOf(c.env).Now()
	entityID, acs, _, _ := spURLs(c.env.PublicURL, c.conn.ID)
	rc := &responseCheck{
		c: c, idp: idp, acs: acs, audience: entityID, now: now, anyAssertion: anyAssertion,
		pol: sigPolicy{certs: idp.Certs, allowSHA1: c.cfg.AllowSHA1, allowShort: c.cfg.AllowShortKeys, now: now},
	}
	if flow == nil {
		rc.unsolicited = true
	} else {
		rc.requestID = flow.RequestID
	}
	assertion, err := rc.checkResponse(doc)
	if err != nil {
		return nil, nil, refuseKind(err)
	}
	if err := c.checkAssertion(assertion, idp, acs, now); err != nil {
		return nil, nil, err
	}
	id, err := c.identity(assertion, idp)
	if err != nil {
		return nil, nil, err
	}
	return id, assertion, nil
}

// refuseKind wraps one of our sentinel errors in the matching public error.
func refuseKind(err error) error {
	for _, k := range []struct {
		kind error
		msg  string
	}{
		{ErrTooLarge, msgTooLarge}, {ErrDoctype, msgUnverified}, {ErrRoundTrip, msgUnverified},
		{ErrAssertionCount, msgUnverified}, {ErrWeakCrypto, msgUnverified}, {ErrSignature, msgUnverified},
		{ErrDecrypt, msgUnverified}, {ErrDestination, msgUnverified}, {ErrAudience, msgUnverified},
		{ErrIssuer, msgUnverified}, {ErrStatus, msgStatus}, {ErrInResponseTo, msgRequest},
		{ErrUnsolicited, msgRequest}, {ErrExpired, msgExpired}, {ErrNotYetValid, msgExpired},
		{ErrSubject, msgSubject}, {ErrUnsupported, msgUnverified}, {ErrMalformed, msgUnverified},
	} {
		if errors.Is(err, k.kind) {
			return refuse(k.kind, k.msg, err)
		}
	}
	return refuse(ErrMalformed, msgUnverified, err)
}

// checkAssertion applies our own checks to the verified assertion: the
// connection's clock skew (crewjam's is a fixed 180 s), the issuer, a
// valid bearer confirmation for our ACS.
func (c *Connector) checkAssertion(a *crewjam.Assertion, idp *idpInfo, acs string, now time.Time) error {
	if a.ID == "" {
		return refuse(ErrMalformed, msgUnverified, errors.New("assertion has no ID"))
	}
	if a.Issuer.Value != idp.EntityID {
		return refuse(ErrIssuer, msgUnverified, fmt.Errorf("assertion issuer %q", a.Issuer.Value))
	}
	skew := c.skew()
	// saml-core §2.5.1.2: NotBefore inclusive, NotOnOrAfter exclusive.
	if a.IssueInstant.After(now.Add(skew)) {
		return refuse(ErrNotYetValid, msgExpired, fmt.Errorf("IssueInstant %s", a.IssueInstant))
	}
	if cond := a.Conditions; cond != nil {
		if !cond.NotBefore.IsZero() && now.Add(skew).Before(cond.NotBefore) {
			return refuse(ErrNotYetValid, msgExpired, fmt.Errorf("Conditions NotBefore %s", cond.NotBefore))
		}
		if !cond.NotOnOrAfter.IsZero() && !now.Before(cond.NotOnOrAfter.Add(skew)) {
			return refuse(ErrExpired, msgExpired, fmt.Errorf("Conditions NotOnOrAfter %s", cond.NotOnOrAfter))
		}
	}
	// One bearer confirmation for our ACS must still be valid
	// (saml-profiles §4.1.4.2-3).
	var confErr error = errors.New("no bearer SubjectConfirmation for this ACS")
	for _, sc := range a.Subject.SubjectConfirmations {
		d := sc.SubjectConfirmationData
		if sc.Method != "urn:oasis:names:tc:SAML:2.0:cm:bearer" || d == nil || d.Recipient != acs {
			continue
		}
		switch {
		case d.NotOnOrAfter.IsZero() || !now.Before(d.NotOnOrAfter.Add(skew)):
			confErr = refuse(ErrExpired, msgExpired, fmt.Errorf("SubjectConfirmationData NotOnOrAfter %s", d.NotOnOrAfter))
		case !d.NotBefore.IsZero() && now.Add(skew).Before(d.NotBefore):
			confErr = refuse(ErrNotYetValid, msgExpired, fmt.Errorf("SubjectConfirmationData NotBefore %s", d.NotBefore))
		default:
			confErr = nil
		}
		if confErr == nil {
			break
		}
	}
	if confErr != nil {
		var ge *gatehouse.Error
		if errors.As(confErr, &ge) {
			return confErr
		}
		return refuse(ErrDestination, msgUnverified, confErr)
	}
	if len(a.AuthnStatements) == 0 {
		return refuse(ErrMalformed, msgUnverified, errors.New("no AuthnStatement"))
	}
	return nil
}

// replayExpiry is how long the replay cache must remember an assertion:
// until no check would accept it any more.
func replayExpiry(a *crewjam.Assertion, skew time.Duration) time.Time {
	latest := a.IssueInstant.Add(crewjam.MaxIssueDelay)
	if a.Conditions != nil && a.Conditions.NotOnOrAfter.After(latest) {
		latest = a.Conditions.NotOnOrAfter
	}
	for _, sc := range a.Subject.SubjectConfirmations {
		if d := sc.SubjectConfirmationData; d != nil && d.NotOnOrAfter.After(latest) {
			latest = d.NotOnOrAfter
		}
	}
	if skew < crewjam.MaxClockSkew {
		skew = crewjam.MaxClockSkew
	}
	return latest.Add(skew)
}
