package web

import (
	"net/url"
	"strings"
)

// maxReturnTo bounds a return target (an app's resumed authorize request
// fits easily).
const maxReturnTo = 2048

// ValidReturnTo reports whether s is a safe place to send the browser after
// login: a local absolute path ("/t/acme/authorize/resume?..."), never
// another site. It refuses:
//   - anything not starting with exactly one "/": "//evil.com" and "/\evil.com"
//     are protocol-relative for browsers (WHATWG URL treats "\" as "/");
//   - a scheme or host ("https://evil.com", "javascript:...");
//   - control characters and spaces, which browsers strip before parsing
//     ("/\t/evil.com" becomes "//evil.com");
//   - backslashes anywhere, and percent-encoded slashes or backslashes right
//     after the first "/" ("/%2F%2Fevil.com"), which some proxies and
//     frameworks decode before redirecting again.
//
// Callers pass the value after one round of query decoding, so a
// "return_to=%2F%2Fevil.com" parameter arrives here as "//evil.com".
func ValidReturnTo(s string) bool {
	if s == "" || len(s) > maxReturnTo || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	if dec, err := url.PathUnescape(s); err != nil || strings.HasPrefix(dec, "//") || strings.HasPrefix(dec, "/\\") {
		return false
	} else {
		for i := 0; i < len(dec); i++ {
			if c := dec[i]; c < ' ' || c == 0x7f {
				return false
			}
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return true
}
