package saml

import (
	"context"
	"errors"
	"strings"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/connector"
)

// verifyCrewjam is the response check as it was before the one-pass
// verifier (commit 67c4aeb): our guard pass (checkXML), then crewjam/saml's
// ParseXMLResponse with our goxmldsig-based verifier, then our checks. It
// is kept, in a test file, as the oracle of the differential tests: the
// one-pass verifier must accept what it accepts with the same identity,
// and refuse what it refuses. The replay cache is left out (both paths
// are asked about the same document).
func (c *Connector) verifyCrewjam(ctx context.Context, flow *connector.Flow, doc []byte) (*gatehouse.Identity, error) {
	if err := checkXML(doc); err != nil {
		return nil, refuseKind(err)
	}
	idp, err := c.idp(ctx)
	if err != nil {
		return nil, err
	}
	clock := clockOf(c.env)
	v := newVerifier(idp.Certs, c.cfg.AllowSHA1, c.cfg.AllowShortKeys, dsigClock(clock))
	unsolicited := flow == nil
	sp := c.newSP(idp, v, unsolicited)
	var requestIDs []string
	if !unsolicited {
		requestIDs = []string{flow.RequestID}
	}
	assertion, err := sp.ParseXMLResponse(doc, requestIDs, sp.AcsURL)
	if err != nil {
		return nil, c.classify(err, v, unsolicited)
	}
	if !v.responseVerified && !v.assertionIDs[assertion.ID] {
		return nil, refuse(ErrSignature, msgUnverified, errors.New("the returned assertion is not covered by a verified signature"))
	}
	if err := c.checkAssertion(assertion, idp, sp.AcsURL.String(), clock.Now()); err != nil {
		return nil, err
	}
	return c.identity(assertion, idp)
}

// classify maps a crewjam/saml refusal to our sentinels.
func (c *Connector) classify(err error, v *verifier, unsolicited bool) error {
	if v.policyErr != nil {
		return refuseKind(v.policyErr)
	}
	// crewjam hides the cause behind a fixed message; keep it for the log.
	var ire *crewjam.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		err = ire.PrivateErr
	}
	var bad crewjam.ErrBadStatus
	switch {
	case errors.As(err, &bad):
		return refuse(ErrStatus, msgStatus, err)
	case errors.Is(err, crewjam.ErrInvalidSignature) && errors.Is(err, crewjam.ErrUnsupported):
		return refuse(ErrWeakCrypto, msgUnverified, err)
	case errors.Is(err, crewjam.ErrRequestIDMismatch) && unsolicited:
		return refuse(ErrUnsolicited, msgRequest, err)
	case errors.Is(err, crewjam.ErrRequestIDMismatch):
		return refuse(ErrInResponseTo, msgRequest, err)
	case errors.Is(err, crewjam.ErrExpired):
		return refuse(ErrExpired, msgExpired, err)
	case errors.Is(err, crewjam.ErrNotYetValid):
		return refuse(ErrNotYetValid, msgExpired, err)
	case errors.Is(err, crewjam.ErrIssuerMismatch):
		return refuse(ErrIssuer, msgUnverified, err)
	case errors.Is(err, crewjam.ErrDestinationMismatch):
		return refuse(ErrDestination, msgUnverified, err)
	case errors.Is(err, crewjam.ErrAudienceMismatch):
		return refuse(ErrAudience, msgUnverified, err)
	case errors.Is(err, crewjam.ErrDecryptionFailed):
		return refuse(ErrDecrypt, msgUnverified, err)
	case errors.Is(err, crewjam.ErrInvalidSignature), strings.Contains(err.Error(), "signature"):
		return refuse(ErrSignature, msgUnverified, err)
	}
	return refuse(ErrMalformed, msgUnverified, err)
}
