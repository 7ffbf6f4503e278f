package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want              string
	}{
		{"direct", "203.0.113.5:1234", "", nil, "203.0.113.5"},
		{"spoofed header from untrusted peer", "203.0.113.5:1234", "1.2.3.4", nil, "203.0.113.5"},
		{"trusted proxy", "10.0.0.2:80", "198.51.100.7", proxies, "198.51.100.7"},
		{"client-supplied hop left of real one ignored", "10.0.0.2:80", "1.2.3.4, 198.51.100.7", proxies, "198.51.100.7"},
		{"chain of trusted proxies", "10.0.0.2:80", "198.51.100.7, 10.0.0.9", proxies, "198.51.100.7"},
		{"garbage header", "10.0.0.2:80", "not-an-ip", proxies, "10.0.0.2"},
		{"ipv6", "[2001:db8::1]:443", "", nil, "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientIP(r, tc.trusted).String(); got != tc.want {
			t.Errorf("%s: got %s want %s", tc.name, got, tc.want)
		}
	}
}
