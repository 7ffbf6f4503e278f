package oidc

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
)

// TestParseTokenResponse: token endpoint answers as providers send them
// (RFC 6749 §5.1 and §5.2), and how the login reports each.
func TestParseTokenResponse(t *testing.T) {
	const js, form = "application/json; charset=utf-8", "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		access, id  string // on success
		code        string // gatehouse code of the login's error
		reason      string // its message names this (the provider's error code)
	}{
		{"success", 200, js, `{"access_token":"at","token_type":"Bearer","expires_in":3600,"id_token":"h.p.s","scope":"openid"}`, "at", "h.p.s", "", ""},
		{"expires_in as a string (older Entra ID)", 200, js, `{"access_token":"at","expires_in":"3599","id_token":"h.p.s"}`, "at", "h.p.s", "", ""},
		{"no content type", 200, "", `{"access_token":"at","id_token":"h.p.s"}`, "at", "h.p.s", "", ""},
		{"form answer", 200, form, `access_token=at&id_token=h.p.s&token_type=bearer`, "at", "h.p.s", "", ""},
		{"no id_token (checked by Finish)", 200, js, `{"access_token":"at"}`, "at", "", "", ""},
		{"invalid_grant", 400, js, `{"error":"invalid_grant","error_description":"code used"}`, "", "", gatehouse.EFORBIDDEN, ""},
		{"invalid_client", 401, js, `{"error":"invalid_client"}`, "", "", gatehouse.EUNAVAILABLE, "invalid_client"},
		{"an error with status 200", 200, js, `{"error":"access_denied"}`, "", "", gatehouse.EFORBIDDEN, "access_denied"},
		{"form error", 400, form, `error=invalid_request`, "", "", gatehouse.EFORBIDDEN, "invalid_request"},
		{"server error without a body", 502, "text/html", `<h1>Bad gateway</h1>`, "", "", gatehouse.EUNAVAILABLE, ""},
		{"no access_token", 200, js, `{"id_token":"h.p.s"}`, "", "", gatehouse.EUNAVAILABLE, ""},
		{"not JSON", 200, js, `<html>`, "", "", gatehouse.EUNAVAILABLE, ""},
		{"access_token of the wrong type", 200, js, `{"access_token":7}`, "", "", gatehouse.EUNAVAILABLE, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
			if tc.contentType != "" {
				resp.Header.Set("Content-Type", tc.contentType)
			}
			tr, err := parseTokenResponse(resp, []byte(tc.body))
			if tc.code == "" {
				if err != nil || tr.AccessToken != tc.access || tr.IDToken != tc.id {
					t.Fatalf("got %+v, %v", tr, err)
				}
				return
			}
			if tr != nil || err == nil {
				t.Fatalf("got %+v, %v; want an error", tr, err)
			}
			err = ExchangeError(context.Background(), err)
			if gatehouse.ErrorCode(err) != tc.code {
				t.Errorf("error %v (code %s), want code %s", err, gatehouse.ErrorCode(err), tc.code)
			}
			if tc.reason != "" && !strings.Contains(gatehouse.ErrorMessage(err), tc.reason) {
				t.Errorf("message %q does not name %s", gatehouse.ErrorMessage(err), tc.reason)
			}
		})
	}
}
