package scim

import (
	"errors"
	"net/http"

	"github.com/gatehouse-sso/gatehouse"
)

// scimType values (RFC 7644 §3.12, Table 9).
const (
	typeUniqueness    = "uniqueness"
	typeInvalidFilter = "invalidFilter"
	typeTooMany       = "tooMany"
	typeMutability    = "mutability"
	typeInvalidSyntax = "invalidSyntax"
	typeInvalidPath   = "invalidPath"
	typeNoTarget      = "noTarget"
	typeInvalidValue  = "invalidValue"
	typeInvalidVers   = "invalidVers"
	typeSensitive     = "sensitive"
)

// scimErr is an EINVALID error carrying its scimType in Reason.
func scimErr(scimType, format string, args ...any) *gatehouse.Error {
	e := gatehouse.Errorf(gatehouse.EINVALID, format, args...)
	e.Reason = scimType
	return e
}

// errBodyTooLarge marks a request body over MaxBodyBytes.
var errBodyTooLarge = &gatehouse.Error{Code: gatehouse.EINVALID, Reason: "tooLarge", Message: "The request body is too large."}

// errorStatus maps an error to the SCIM status and scimType: the ONE place
// where gatehouse error codes become SCIM errors (RFC 7644 §3.12).
func errorStatus(err error) (status int, scimType string) {
	var e *gatehouse.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError, ""
	}
	switch e.Code {
	case gatehouse.EINVALID:
		switch e.Reason {
		case "tooLarge":
			return http.StatusRequestEntityTooLarge, ""
		case "":
			return http.StatusBadRequest, typeInvalidValue
		}
		return http.StatusBadRequest, e.Reason
	case gatehouse.EUNAUTHORIZED:
		return http.StatusUnauthorized, ""
	case gatehouse.EFORBIDDEN:
		return http.StatusForbidden, ""
	case gatehouse.ENOTFOUND:
		return http.StatusNotFound, ""
	case gatehouse.ECONFLICT:
		return http.StatusConflict, typeUniqueness
	case gatehouse.EPRECONDITION:
		return http.StatusPreconditionFailed, ""
	case gatehouse.EUNAVAILABLE:
		return http.StatusServiceUnavailable, ""
	case "not_modified":
		return http.StatusNotModified, ""
	case "not_implemented":
		return http.StatusNotImplemented, ""
	case "method_not_allowed":
		return http.StatusMethodNotAllowed, ""
	}
	return http.StatusInternalServerError, ""
}

// errorDoc is the SCIM error body (RFC 7644 §3.12).
func errorDoc(err error) (int, map[string]any) {
	status, scimType := errorStatus(err)
	doc := map[string]any{
		"schemas": []string{msgError},
		"status":  itoa(status),
		"detail":  gatehouse.ErrorMessage(err),
	}
	if scimType != "" {
		doc["scimType"] = scimType
	}
	return status, doc
}

// Codes local to this package for HTTP outcomes the domain has no code for.
func errNotModified() error { return &gatehouse.Error{Code: "not_modified", Message: "Not modified."} }

func errMethod() error {
	return &gatehouse.Error{Code: "method_not_allowed", Message: "This method is not allowed on this endpoint."}
}

func errNotImplemented(what string) error {
	return &gatehouse.Error{Code: "not_implemented", Message: what + " is not supported."}
}
