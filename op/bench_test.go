package op

import (
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"golang.org/x/oauth2"
)

// processCPU is the process's user + system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTokenGrant: code exchanges and refresh grants of an ES256 app
// over loopback HTTP on SQLite, through our grants (token.go) and through
// zitadel's, as the load tool's token and refresh scenarios do. The codes
// and refresh tokens are made before the timer starts. cpu-µs/op is the
// whole test process (client and server), steady on a loaded machine where
// ns/op is not.
//
//	go test ./op -run '^$' -bench TokenGrant -benchtime 2000x -count 6
func BenchmarkTokenGrant(b *testing.B) {
	// code-offline: a code grant with offline_access, which issues a
	// refresh token too.
	for _, grant := range []string{"code", "code-offline", "refresh"} {
		for _, impl := range []string{"ours", "zitadel"} {
			b.Run(grant+"/"+impl, func(b *testing.B) {
				e := newEnv(b, "sqlite")
				e.prov.zitadelGrants.Store(impl == "zitadel")
				e.signInAs(e.user("ana@acme.test"))
				a, sec := e.app(gatehouse.App{IDTokenSigningAlg: "ES256"})
				scopes := []string{"openid", "email", "profile"}
				if grant != "code" {
					scopes = append(scopes, "offline_access")
				}
				r := e.rp(a, sec, scopes...)
				br := e.browser()
				// One form per grant, made before the timer.
				forms := make([]url.Values, b.N)
				for i := range forms {
					verifier, _ := pkce()
					q := r.authorize(br, oauth2.S256ChallengeOption(verifier))
					forms[i] = url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
						"redirect_uri": {a.RedirectURIs[0]}, "code_verifier": {verifier}}
					if grant == "refresh" {
						status, body := e.form("/token", forms[i], a.ClientID, sec)
						if status != http.StatusOK {
							b.Fatalf("code exchange: %d %v", status, body)
						}
						forms[i] = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}}
					}
				}
				b.ResetTimer()
				cpu0, start := processCPU(), time.Now()
				for i := range forms {
					if status, body := e.form("/token", forms[i], a.ClientID, sec); status != http.StatusOK {
						b.Fatalf("%s grant: %d %v", grant, status, body)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}
