package saml

import (
	"errors"

	"github.com/gatehouse-sso/gatehouse"
)

// Sentinel causes of a refused SAML response, for errors.Is in tests, logs
// and metrics. They are wrapped in a *gatehouse.Error whose Message is safe
// to show and says nothing an attacker could use to tune a forgery.
var (
	ErrTooLarge       = errors.New("saml: response too large")
	ErrMalformed      = errors.New("saml: malformed response")
	ErrDoctype        = errors.New("saml: DOCTYPE or entity declaration")
	ErrRoundTrip      = errors.New("saml: XML changes on a round trip")
	ErrAssertionCount = errors.New("saml: response must carry exactly one assertion")
	ErrSignature      = errors.New("saml: signature invalid or missing")
	ErrWeakCrypto     = errors.New("saml: SHA-1 or short key refused")
	ErrDestination    = errors.New("saml: Destination or Recipient mismatch")
	ErrAudience       = errors.New("saml: Audience mismatch")
	ErrIssuer         = errors.New("saml: Issuer mismatch")
	ErrInResponseTo   = errors.New("saml: InResponseTo does not match this browser's request")
	ErrUnsolicited    = errors.New("saml: unsolicited response refused")
	ErrExpired        = errors.New("saml: assertion expired")
	ErrNotYetValid    = errors.New("saml: assertion not yet valid")
	ErrReplayed       = errors.New("saml: assertion replayed")
	ErrDecrypt        = errors.New("saml: cannot decrypt assertion")
	ErrStatus         = errors.New("saml: IdP returned an error status")
	ErrSubject        = errors.New("saml: no usable subject")
	ErrUnsupported    = errors.New("saml: unsupported binding or feature")
	ErrNoReplayCache  = errors.New("saml: no replay cache configured")
	ErrLogoutResponse = errors.New("saml: logout response refused")
	ErrMetadata       = errors.New("saml: IdP metadata unusable")
)

// Public messages. The user sees one of these; the operator's log gets the
// wrapped cause.
const (
	msgUnverified = "The sign-in response from your identity provider could not be verified."
	msgTooLarge   = "The sign-in response from your identity provider is too large."
	msgExpired    = "The sign-in response from your identity provider has expired or is not valid yet. Please sign in again."
	msgReplayed   = "This sign-in response was already used. Please sign in again."
	msgStatus     = "Your identity provider did not sign you in."
	msgSubject    = "Your identity provider did not send a stable user identifier; ask your administrator to check the SAML NameID or subject attribute."
	msgUnsolicit  = "This connection does not accept sign-ins started at the identity provider. Please start from the sign-in page."
	msgRequest    = "This sign-in response does not belong to your sign-in attempt. Please sign in again."
)

// refuse wraps cause (classified by kind) in a user-safe *gatehouse.Error.
func refuse(kind error, msg string, cause error) *gatehouse.Error {
	err := kind
	switch {
	case cause != nil && errors.Is(cause, kind):
		err = cause
	case cause != nil:
		err = &wrapped{kind: kind, cause: cause}
	}
	code := gatehouse.EUNAUTHORIZED
	if kind == ErrStatus || kind == ErrSubject || kind == ErrUnsolicited {
		code = gatehouse.EFORBIDDEN
	}
	if kind == ErrNoReplayCache {
		code = gatehouse.EINTERNAL
	}
	return &gatehouse.Error{Code: code, Message: msg, Reason: "saml_" + reasonOf(kind), Err: err}
}

// wrapped joins a sentinel kind and its detailed cause: errors.Is matches
// both.
type wrapped struct{ kind, cause error }

func (w *wrapped) Error() string   { return w.kind.Error() + ": " + w.cause.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.kind, w.cause} }

func reasonOf(kind error) string {
	switch kind {
	case ErrTooLarge:
		return "too_large"
	case ErrMalformed, ErrDoctype, ErrRoundTrip, ErrAssertionCount:
		return "malformed"
	case ErrSignature, ErrWeakCrypto:
		return "signature"
	case ErrDestination, ErrAudience, ErrIssuer:
		return "wrong_recipient"
	case ErrInResponseTo:
		return "in_response_to"
	case ErrUnsolicited:
		return "unsolicited"
	case ErrExpired, ErrNotYetValid:
		return "time"
	case ErrReplayed:
		return "replayed"
	case ErrDecrypt:
		return "decrypt"
	case ErrStatus:
		return "idp_status"
	case ErrSubject:
		return "subject"
	case ErrLogoutResponse:
		return "logout"
	}
	return "invalid"
}
