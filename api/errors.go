package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/httperr"
)

// reasonTooLarge marks an EINVALID error for a body over the limit, which
// HTTP reports as 413 rather than 400.
const reasonTooLarge = httperr.ReasonTooLarge

// errorBody is the JSON shape of every API error:
// {"error":{"code":"invalid","message":"...","field":"email"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// httpStatus maps an error to its HTTP status through the one shared table.
func httpStatus(err error) int { return httperr.Status(err) }

// writeError answers with err in the API's error shape. Internal errors are
// logged in full with the request id and shown as "Internal error."; the
// private cause of any error never reaches the client.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := gatehouse.ErrorCode(err)
	status := httpStatus(err)
	msg := gatehouse.ErrorMessage(err)
	var ge *gatehouse.Error
	if code == gatehouse.EINTERNAL || !errors.As(err, &ge) {
		code, msg = gatehouse.EINTERNAL, "Internal error."
	}
	switch {
	case status >= 500:
		s.log.ErrorContext(r.Context(), "api request failed",
			slog.String("request_id", requestID(r)), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("code", code), slog.Any("err", err))
	case errors.Unwrap(err) != nil:
		s.log.InfoContext(r.Context(), "api request refused",
			slog.String("request_id", requestID(r)), slog.String("code", code), slog.Any("err", err))
	}
	if status == http.StatusUnauthorized {
		// RFC 6750 §3: a protected resource answers 401 with a challenge.
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg, Field: gatehouse.ErrorField(err)}})
}

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if status == http.StatusNoContent || v == nil {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// requestID is the id the server's middleware gave this request.
func requestID(r *http.Request) string { return r.Header.Get("X-Request-Id") }
