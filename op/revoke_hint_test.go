package op

import (
	"net/http"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
)

// TestRevokeRefreshWithAccessHint: RFC 7009 section 2.1, "If the server
// is unable to locate the token using the given hint, it MUST extend its
// search across all of its supported token types." A refresh token
// revoked with token_type_hint=access_token revokes its grant as with the
// right hint (found by the session 5 review: it stayed live); another
// client's refresh token sent so is still left alone.
func TestRevokeRefreshWithAccessHint(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		e.signInAs(e.user("ana@acme.test"))
		a, sec := e.app(gatehouse.App{})
		p := e.s5Login(a, sec)
		e.s5Revoke(e.issuer(), a.ClientID, sec, p.refresh, "access_token")
		status, body := e.s5Refresh(a, sec, p.refresh)
		wantAnswer(t, "refresh after revoking it (hint access_token)", status, body, http.StatusBadRequest, "invalid_grant")
		if e.s5Active("paired access token", a, sec, p.access) {
			t.Error("the grant's access token is live after its refresh token was revoked")
		}
		b, bsec := e.app(gatehouse.App{Name: "Other"})
		q := e.s5Login(a, sec)
		e.s5Revoke(e.issuer(), b.ClientID, bsec, q.refresh, "access_token")
		status, body = e.s5Refresh(a, sec, q.refresh)
		wantAnswer(t, "refresh after another client revoked it", status, body, http.StatusOK, "")
	})
}
