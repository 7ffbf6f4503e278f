package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"

	"golang.org/x/oauth2"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/secret"
)

// This file holds the authorization-response handling that OAuth 2.0 and
// OpenID Connect share (RFC 6749 §4.1.2); connector/oauth2 uses it too.

// Refusal reasons (gatehouse.Error.Reason) for the login handler's log and
// audit entry.
const (
	ReasonState         = "state_mismatch"
	ReasonIssuer        = "issuer_mismatch"
	ReasonIdPError      = "idp_error"
	ReasonNoCode        = "missing_code"
	ReasonExchange      = "token_exchange_failed"
	ReasonIDToken       = "id_token_invalid"
	ReasonUserInfo      = "userinfo_failed"
	ReasonUserInfoSub   = "userinfo_subject_mismatch"
	ReasonUnavailable   = "idp_unavailable"
	ReasonMissingClaims = "missing_claims"
	ReasonHostedDomain  = "hosted_domain"
)

// Refuse returns the error for a login that must not proceed: a message the
// user may read, the cause for the log.
func Refuse(reason, message string, cause error) *gatehouse.Error {
	return &gatehouse.Error{Code: gatehouse.EFORBIDDEN, Reason: reason, Message: message, Err: cause}
}

// Unavailable returns the error for an IdP that cannot be reached or
// answers nonsense.
func Unavailable(reason string, cause error) *gatehouse.Error {
	return &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Reason: reason, Err: cause,
		Message: "The identity provider could not be reached or gave an unusable answer. Try again in a moment; if it keeps failing, contact your administrator."}
}

// FlowStateParam returns the state of an authorization response.
func FlowStateParam(r *http.Request) string { return r.URL.Query().Get("state") }

// CheckState compares the response's state with the flow's, in constant
// time (RFC 6749 §10.12: the state binds the response to this browser).
func CheckState(q url.Values, want string) error {
	// RFC 6749 §3.1: parameters must not repeat; with two values, which
	// one a component reads is a parser accident an attacker can exploit.
	for _, p := range []string{"state", "code", "iss", "error"} {
		if len(q[p]) > 1 {
			return Refuse(ReasonState, "This sign-in response is malformed. Start again.", fmt.Errorf("parameter %s repeated", p))
		}
	}
	got := q.Get("state")
	if want == "" || got == "" || !secret.EqualString(got, want) {
		return Refuse(ReasonState, "This sign-in response does not belong to the sign-in started in this browser. Start again.",
			fmt.Errorf("state mismatch (present=%v)", got != ""))
	}
	return nil
}

var errorCodeRE = regexp.MustCompile(`^[a-z_]{1,64}$`)

// ProviderError turns an error response (RFC 6749 §4.1.2.1) into a
// user-safe error. The IdP's error_description goes to the log only: it is
// free text that a crafted link could fill.
func ProviderError(q url.Values) error {
	code := q.Get("error")
	if code == "" {
		return nil
	}
	cause := fmt.Errorf("identity provider error %q: %s", code, q.Get("error_description"))
	shown := code
	if !errorCodeRE.MatchString(code) {
		shown = "invalid error code"
	}
	switch code {
	case "access_denied":
		return Refuse(ReasonIdPError, "The identity provider denied the sign-in (access_denied). If you think you should have access, contact your administrator.", cause)
	case "login_required", "interaction_required", "consent_required", "account_selection_required":
		return Refuse(ReasonIdPError, fmt.Sprintf("The identity provider needs you to sign in or give consent (%s). Start the sign-in again.", shown), cause)
	case "temporarily_unavailable", "server_error":
		return &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Reason: ReasonIdPError, Err: cause,
			Message: fmt.Sprintf("The identity provider is unavailable right now (%s). Try again in a moment.", shown)}
	}
	return Refuse(ReasonIdPError, fmt.Sprintf("The identity provider refused the sign-in (%s). Contact your administrator.", shown), cause)
}

// Code returns the authorization code of a successful response.
func Code(q url.Values) (string, error) {
	code := q.Get("code")
	if code == "" {
		return "", Refuse(ReasonNoCode, "The identity provider's answer has no authorization code. Start the sign-in again.", errors.New("no code in the authorization response"))
	}
	return code, nil
}

// ExchangeError classifies a failed code exchange (RFC 6749 §5.2).
func ExchangeError(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "invalid_client", "unauthorized_client":
			return &gatehouse.Error{Code: gatehouse.EUNAVAILABLE, Reason: ReasonExchange, Err: err,
				Message: fmt.Sprintf("The identity provider rejected Gatehouse's credentials for this connection (%s). Ask your administrator to check the connection's client ID and secret.", re.ErrorCode)}
		case "invalid_grant":
			return Refuse(ReasonExchange, "The sign-in code was refused by the identity provider (it may have expired or been used already). Start the sign-in again.", err)
		case "":
			if re.Response != nil && re.Response.StatusCode >= 500 {
				return Unavailable(ReasonExchange, err)
			}
		}
		if errorCodeRE.MatchString(re.ErrorCode) {
			return Refuse(ReasonExchange, fmt.Sprintf("The identity provider refused the sign-in at the token endpoint (%s). Contact your administrator.", re.ErrorCode), err)
		}
		return Refuse(ReasonExchange, "The identity provider refused the sign-in at the token endpoint. Contact your administrator.", err)
	}
	if ctx.Err() != nil {
		return Unavailable(ReasonUnavailable, fmt.Errorf("token exchange: %w (%v)", err, ctx.Err()))
	}
	return Unavailable(ReasonUnavailable, fmt.Errorf("token exchange: %w", err))
}
