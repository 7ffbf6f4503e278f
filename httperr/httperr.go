// Package httperr maps domain errors to HTTP status codes: the one table
// every HTTP surface uses (the admin API, the login pages, the console; SCIM
// refines it with scimType, the OpenID provider with OAuth error codes).
package httperr

import (
	"net/http"

	"github.com/gatehouse-sso/gatehouse"
)

// ReasonTooLarge marks an EINVALID error for a body over its size limit.
const ReasonTooLarge = "too_large"

// Status returns the HTTP status of err. Unknown errors are 500: their
// details are for the log only.
func Status(err error) int {
	switch gatehouse.ErrorCode(err) {
	case "":
		return http.StatusOK
	case gatehouse.EINVALID:
		if gatehouse.ErrorReason(err) == ReasonTooLarge {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusBadRequest
	case gatehouse.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case gatehouse.EFORBIDDEN:
		return http.StatusForbidden
	case gatehouse.ENOTFOUND:
		return http.StatusNotFound
	case gatehouse.ECONFLICT:
		return http.StatusConflict
	case gatehouse.EPRECONDITION:
		return http.StatusPreconditionFailed
	case gatehouse.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
