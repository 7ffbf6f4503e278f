package web

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// BenchmarkLogin measures one whole login of a returning user over HTTP on
// loopback — start, callback with the flow cookie, one-time flow record,
// connector, provisioning, session — with the mock connector, per engine.
func BenchmarkLogin(b *testing.B) {
	for _, engine := range testdb.Engines {
		b.Run(engine, func(b *testing.B) {
			e := newEnv(b, engine)
			acme := e.tenant("acme", "acme.com")
			e.mockConn(acme, "Acme SSO")
			start := loginPath("acme", url.Values{"login_hint": {"ana@acme.com"}})
			br := e.browser()
			if r := br.follow(start); r.StatusCode != http.StatusOK {
				b.Fatalf("first login: %d", r.StatusCode)
			}
			b.ResetTimer()
			for b.Loop() {
				cb := br.get(start).Header.Get("Location")
				if r := br.get(cb); r.StatusCode != http.StatusFound {
					b.Fatalf("callback: %d %s", r.StatusCode, r.Body)
				}
			}
		})
	}
}
