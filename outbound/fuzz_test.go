package outbound

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzCheckURL: whatever CheckURL accepts under the strict policy is an
// https URL with a host, no credentials, and no IP literal the policy
// refuses.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://idp.example.com/", "http://127.0.0.1:8080/", "https://[::ffff:169.254.169.254]/",
		"https://user@host/", "https://10.0.0.1/", "https://0x7f.1/", "https://localhost./", "HTTPS://IDP.EXAMPLE/", "https://%31%30.0.0.1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if err := CheckURL(raw, Policy{}); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if ip, err := netip.ParseAddr(host); err == nil && classify(ip) != "" {
			t.Fatalf("accepted %q (%s)", raw, classify(ip))
		}
		if host == "localhost" || strings.HasSuffix(host, ".localhost") {
			t.Fatalf("accepted loopback name %q", raw)
		}
	})
}

func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "fd00::/8, 192.168.1.1", "", ",,", "1.2.3.4/33", "::ffff:1.2.3.4/128"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, env string) {
		ps, err := ParseAllow(env)
		if err != nil {
			if !strings.Contains(err.Error(), EnvAllow) {
				t.Fatalf("error does not name %s: %v", EnvAllow, err)
			}
			return
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("%q gave %v", env, p)
			}
		}
	})
}
