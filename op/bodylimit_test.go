package op

import (
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
)

// TestOversizedFormRefused: a token request larger than MaxRequestBytes is
// refused; the same request at normal size succeeds.
func TestOversizedFormRefused(t *testing.T) {
	e := newEnv(t, "sqlite")
	a, sec := e.app(gatehouse.App{Name: "svc"})
	ok := url.Values{"grant_type": {"client_credentials"}}
	if status, body := e.form("/token", ok, a.ClientID, sec); status != 200 {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
	big := url.Values{"grant_type": {"client_credentials"}, "pad": {strings.Repeat("x", MaxRequestBytes)}}
	if status, body := e.form("/token", big, a.ClientID, sec); status == 200 {
		t.Fatalf("oversized token request answered 200: %v", body)
	}
}
