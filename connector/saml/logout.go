package saml

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-sso/gatehouse"
)

// ErrNoSLO is returned by LogoutRedirect when the connection has no IdP
// single logout endpoint: the caller just ends the local session.
var ErrNoSLO = errors.New("saml: the IdP has no single logout endpoint configured")

// sloURL is the IdP's HTTP-Redirect SingleLogoutService: idp_slo_url, else
// the metadata's.
func (c *Connector) sloURL(idp *idpInfo) string {
	if c.cfg.IdPSLOURL != "" {
		return c.cfg.IdPSLOURL
	}
	return idp.SLORedirect
}

// LogoutRedirect builds the SP-initiated single logout (saml-profiles
// §4.4): a LogoutRequest for the session's NameID (as the IdP sent it, with
// its format) and SessionIndex, sent with the HTTP-Redirect binding and
// signed in the query string (RSA-SHA256, saml-bindings §3.4.4.1). It
// returns the URL to redirect the browser to and the request ID, which the
// caller keeps (in a cookie) to check the IdP's LogoutResponse with
// FinishLogout. relayState must be an opaque handle, never a URL.
func (c *Connector) LogoutRedirect(ctx context.Context, nameID, nameIDFormat, sessionIndex, relayState string) (redirectURL, requestID string, err error) {
	idp, err := c.idp(ctx)
	if err != nil {
		return "", "", err
	}
	slo := c.sloURL(idp)
	if slo == "" {
		return "", "", ErrNoSLO
	}
	if nameID == "" {
		return "", "", errors.New("saml: logout needs the session's NameID")
	}
	sp := c.newSP(idp, nil, false)
	sp.AuthnNameIDFormat = crewjam.NameIDFormat(nameIDFormat)
	if nameIDFormat == formatUnspecified || nameIDFormat == "" {
		sp.AuthnNameIDFormat = crewjam.UnspecifiedNameIDFormat
	}
	var opts []crewjam.LogoutRequestOption
	if sessionIndex != "" {
		opts = append(opts, crewjam.WithSessionIndex(sessionIndex))
	}
	req, err := sp.MakeLogoutRequest(slo, nameID, opts...)
	if err != nil {
		return "", "", fmt.Errorf("saml: make LogoutRequest: %w", err)
	}
	u, err := sp.RedirectLogoutRequestURL(req, relayState)
	if err != nil {
		return "", "", fmt.Errorf("saml: LogoutRequest URL: %w", err)
	}
	return u.String(), req.ID, nil
}

// FinishLogout checks the IdP's LogoutResponse received at
// /sso/saml/{id}/slo (HTTP-Redirect or HTTP-POST): signed by a configured
// IdP certificate, Destination our SLO URL, Issuer the IdP, InResponseTo
// requestID (from LogoutRedirect), status Success. The local session is
// ended whatever the answer; the error only says whether the IdP confirmed.
func (c *Connector) FinishLogout(ctx context.Context, r *http.Request, requestID string) error {
	if requestID == "" {
		return refuse(ErrLogoutResponse, "This sign-out response does not belong to your sign-out.", errors.New("no LogoutRequest ID"))
	}
	if r.Method == http.MethodPost {
		if err := readForm(r); err != nil {
			return refuse(ErrLogoutResponse, msgUnverified, err)
		}
	}
	if len(r.URL.RawQuery) > maxFormBytes {
		return refuse(ErrLogoutResponse, msgTooLarge, ErrTooLarge)
	}
	idp, err := c.idp(ctx)
	if err != nil {
		return &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Message: "The identity provider's settings could not be loaded.", Err: err}
	}
	v := newVerifier(idp.Certs, c.cfg.AllowSHA1, c.cfg.AllowShortKeys, dsigClock(clockOf(c.env)))
	sp := c.newSP(idp, v, false)
	if _, err := sp.ParseLogoutResponse(r, []string{requestID}); err != nil {
		return refuse(ErrLogoutResponse, "Your identity provider did not confirm the sign-out.", err)
	}
	return nil
}
